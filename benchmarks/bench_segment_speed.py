"""Fine-tuning's rollouts against the bare simulator: one worker, segments of the Gaussian
policy with 1, 2, 4 and 8 environments in lockstep (``segment_envs``), each step's time
inside the simulator measured beside the segment's.

    .venv/bin/python benchmarks/bench_segment_speed.py --policy POLICY [--steps 4096]
        [--envs 1,2,4,8] [--repeats 3] [--results F]

Each configuration runs ``--repeats`` segments of ``--steps`` steps in one process (the
first, which builds the environments, is left out), the configurations interleaved so
that load on the machine falls on all alike. Prints per configuration the rollout's
steps per second (policy, sampling and simulator; the anchor's expert labels are timed
apart and excluded), the bare simulator's steps per second in the same segments
(``reset`` and ``step`` alone) and their ratio, and the labels' cost per step; writes
``benchmarks/results/bench_segment_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policy", required=True, help="a walk policy directory")
    parser.add_argument("--steps", type=int, default=4096)
    parser.add_argument("--envs", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    results = args.results or ROOT / "benchmarks" / "results" / "bench_segment_speed.json"
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # as in the rollout workers

    import numpy as np

    from models import load_policy
    from models.inference import compile_numpy
    from pipeline.rollout.segments import SegmentTask, SegmentWorker

    loaded = load_policy(args.policy)
    forward = compile_numpy(loaded.model, check=False)
    scale = np.sqrt(np.asarray(loaded.spec.act_variance, np.float64))
    std = scale * np.exp(-3.0)  # the fine-tuning's initial spread
    env_kwargs = {"start_phase": "random", "episode_seconds": 6.0}
    envs = [int(n) for n in args.envs.split(",")]
    workers = {n: SegmentWorker(loaded.spec.env_id, env_kwargs) for n in envs}
    totals = {n: {"steps": 0, "wall_s": 0.0, "sim_s": 0.0, "label_s": 0.0} for n in envs}
    for repeat in range(args.repeats + 1):
        for n in envs:
            task = SegmentTask(forward, std, scale, args.steps, seed=repeat, envs=n,
                               expert_labels=True)  # fmt: skip
            segment = workers[n].run(task)
            if repeat == 0:
                continue  # environments built, expert loaded
            total = totals[n]
            total["steps"] += len(segment.obs)
            total["wall_s"] += segment.wall_s
            total["sim_s"] += segment.sim_s
            total["label_s"] += segment.label_s
    rows = []
    for n in envs:
        t = totals[n]
        rollout = t["steps"] / (t["wall_s"] - t["label_s"])
        bare = t["steps"] / t["sim_s"]
        rows.append({"envs": n, **t, "rollout_steps_per_s": rollout, "bare_steps_per_s": bare,
                     "ratio": rollout / bare,
                     "label_ms_per_step": 1e3 * t["label_s"] / t["steps"]})  # fmt: skip
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "args": {k: str(v) for k, v in vars(args).items()},
        "env_id": loaded.spec.env_id,
        "rows": rows,
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"rollout speed of one worker, {loaded.spec.env_id}")
    for column in ("environments", "rollout steps/s", "bare simulator steps/s", "ratio",
                   "expert labels, ms per step"):  # fmt: skip
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["envs"]), f"{row['rollout_steps_per_s']:.0f}",
                      f"{row['bare_steps_per_s']:.0f}", f"{row['ratio']:.3f}",
                      f"{row['label_ms_per_step']:.3f}")  # fmt: skip
    Console(width=120).print(table)
    print(f"results: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
