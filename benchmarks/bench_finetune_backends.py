"""Fine-tuning's rollouts on the local pool and on a two-node Ray cluster started on this
machine: the same short run on both, its speed, and whether it ends in the same weights.

    .venv/bin/python benchmarks/bench_finetune_backends.py --start POLICY [--updates 8]
        [--results F]

Both runs: ``--updates`` updates of 8192 steps (the first warms the critic up) with two
workers (two local processes; two Ray actors, one on each node of a
``ray.cluster_utils.Cluster`` of two one-CPU nodes on 127.0.0.1), a selection only at the
start and the end. Prints wall time, environment steps per second, the rollouts' steps per
second per worker against the bare simulator's (with the anchor's expert labels, and
without them: the rollout alone), and whether the two final checkpoints are
identical; writes ``benchmarks/results/bench_finetune_backends.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


def run(start: str, out: Path, updates: int, backend: object) -> dict:
    """One short fine-tuning run; its wall time, speed and checkpoint arrays."""
    import numpy as np

    from pipeline.algorithms.finetune import CHECKPOINT_FILE, FinetuneRequest, finetune
    from pipeline.algorithms.finetune_config import resolve_finetune_config
    from pipeline.rollout.policy_source import local_policy_env

    overrides = [f"steps={8192 * updates}", "critic.warmup_updates=1", "selection.every=1000"]
    config = resolve_finetune_config(None, overrides, env_id=local_policy_env(start))
    began = time.perf_counter()
    result = finetune(FinetuneRequest(policy=start, out=out, config=config, workers=2,
                                      backend=backend))  # type: ignore[arg-type]  # fmt: skip
    wall = time.perf_counter() - began
    rows = result.rows
    with np.load(out / CHECKPOINT_FILE) as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
    return {
        "wall_s": wall,
        "env_steps": result.env_steps,
        "steps_per_s": result.env_steps / wall,
        "rollout_s": sum(r.wall_s for r in rows),
        "steps_per_s_per_worker": sum(r.steps_per_s for r in rows) / len(rows),
        "rollout_steps_per_s_per_worker": sum(r.rollout_steps_per_s for r in rows) / len(rows),
        "bare_steps_per_s": sum(r.bare_steps_per_s for r in rows) / len(rows),
        "arrays": arrays,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", required=True)
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    results = args.results or ROOT / "benchmarks" / "results" / "bench_finetune_backends.json"

    import numpy as np
    from ray.cluster_utils import Cluster

    from pipeline.rollout.cluster import LOCAL, cluster_session, parse_backend

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only (DESIGN.md)
    work = Path(tempfile.mkdtemp(prefix="bench-ft-backends-"))
    rows = {"local": run(args.start, work / "local", args.updates, LOCAL)}
    node = {"node_ip_address": LOOPBACK, "num_cpus": 1}
    cluster = Cluster(initialize_head=True, connect=False, head_node_args=node)
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        backend = parse_backend("ray", cluster.address)
        with cluster_session(backend):
            rows["ray, 2 nodes"] = run(args.start, work / "ray", args.updates, backend)
    finally:
        cluster.shutdown()
    local, ray = rows["local"]["arrays"], rows["ray, 2 nodes"]["arrays"]
    identical = local.keys() == ray.keys() and all(np.array_equal(local[k], ray[k]) for k in local)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "args": {k: str(v) for k, v in vars(args).items()},
        "identical_checkpoints": identical,
        "runs": {
            name: {k: v for k, v in row.items() if k != "arrays"} for name, row in rows.items()
        },
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"fine-tuning, {args.updates} updates of 8192 steps, 2 workers")
    for column in ("backend", "wall s", "env steps/s", "steps/s per worker with labels",
                   "rollout steps/s per worker", "bare simulator steps/s", "ratio with labels",
                   "rollout ratio"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, row in report["runs"].items():
        bare = row["bare_steps_per_s"]
        table.add_row(name, f"{row['wall_s']:.0f}", f"{row['steps_per_s']:.0f}",
                      f"{row['steps_per_s_per_worker']:.0f}",
                      f"{row['rollout_steps_per_s_per_worker']:.0f}", f"{bare:.0f}",
                      f"{row['steps_per_s_per_worker'] / bare:.2f}",
                      f"{row['rollout_steps_per_s_per_worker'] / bare:.2f}")  # fmt: skip
    Console(width=140).print(table)
    print(f"identical checkpoints: {identical}")
    print(f"results: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
