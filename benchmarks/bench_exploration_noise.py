"""How much exploration noise a policy tolerates: survival of the Gaussian policy that
``pipeline finetune`` samples from, at several spreads, before any fine-tuning.

    .venv/bin/python benchmarks/bench_exploration_noise.py --policy P [--stds 0,0.03,0.1,0.3]
        [--steps 16230] [--seed 123] [--results F]

For each spread (in units of the policy's action std, the unit of ``exploration.log_std``)
one rollout segment of ``--steps`` steps of 20-s random-start episodes (the segment workers
fine-tuning uses, one process per spread) with white Gaussian noise around the policy's
action. Prints the episodes that ended, their survival and pose reward; writes
``benchmarks/results/bench_exploration_noise.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def survival_at(policy: str, std: float, steps: int, seed: int) -> dict:
    """One segment at spread ``std``: its ended episodes' survival and pose reward."""
    import numpy as np

    from models import load_policy
    from models.inference import compile_numpy
    from pipeline.rollout.options import is_motion_env
    from pipeline.rollout.segments import SegmentTask, SegmentWorker

    loaded = load_policy(policy)
    scale = np.sqrt(np.asarray(loaded.spec.act_variance, np.float64))
    env_id = loaded.spec.env_id
    kwargs = {"start_phase": "random", "episode_seconds": 20.0} if is_motion_env(env_id) else {}
    worker = SegmentWorker(env_id, kwargs)
    task = SegmentTask(compile_numpy(loaded.model), scale * max(std, 1e-12), scale, steps, seed)
    episodes = worker.run(task).episodes
    worker.close()
    return {
        "std": std,
        "episodes": len(episodes),
        "survival": 1.0 - float(np.mean([e["fell"] for e in episodes])),
        "pose_reward": float(np.mean([e["pose_reward"] for e in episodes])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--stds", default="0,0.03,0.1,0.3")
    parser.add_argument("--steps", type=int, default=16230, help="30 full walk episodes")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    stds = [float(s) for s in args.stds.split(",")]
    results = args.results or ROOT / "benchmarks" / "results" / "bench_exploration_noise.json"
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # two simulation processes on two cores
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(survival_at, [args.policy] * len(stds), stds,
                             [args.steps] * len(stds), [args.seed] * len(stds)))  # fmt: skip
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "args": {k: str(v) for k, v in vars(args).items()},
        "rows": rows,
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"exploration noise against survival: {args.policy}")
    for column in ("std (x action std)", "episodes ended", "survival", "pose reward"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(f"{row['std']:g}", str(row["episodes"]), f"{row['survival']:.0%}",
                      f"{row['pose_reward']:.3f}")  # fmt: skip
    Console(width=120).print(table)
    print(f"results: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
