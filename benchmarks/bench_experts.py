"""How well the shipped experts do in our environments (survival, return, distance).

    .venv/bin/python benchmarks/bench_experts.py [--workers 2]

- Walk expert from phase 0 for 20 s (seed 0): falls? distance?
- Walk expert from random start phases, seeds 0..39, 20 s: survival rate.
- Run expert, seeds 0..19, 1000 steps: mean/min/max return, falls, distance.

The same numbers come from ``pipeline rollout`` (commands in docs/benchmarks/experts.md). Prints a
table and writes ``benchmarks/results/bench_experts.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

import sim
from pipeline.rollout.episodes import summarize
from pipeline.rollout.policies import ExpertPolicy
from pipeline.rollout.workers import EpisodeTask, run_episodes

RESULTS = Path(__file__).parent / "results" / "bench_experts.json"
CASES = [
    ("walk, phase 0", "sim/HumanoidWalk-v0", {"start_phase": 0.0}, 1),
    ("walk, random start phase", "sim/HumanoidWalk-v0", {"start_phase": "random"}, 40),
    ("run", "sim/HumanoidRun-v0", {}, 20),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    experts = {
        env_id: ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[env_id])) for env_id in sim.ENV_IDS
    }
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "cases": {},
    }
    for name, env_id, kwargs, episodes in CASES:
        start = time.perf_counter()
        tasks = [EpisodeTask(i) for i in range(episodes)]
        results = run_episodes(env_id, kwargs, experts[env_id], tasks, args.workers)
        report["cases"][name] = {
            "env_id": env_id,
            "env_kwargs": kwargs,
            "seeds": [t.seed for t in tasks],
            "summary": summarize(results),
            "episodes": [r.to_dict() for r in results],
            "wall_s": time.perf_counter() - start,
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    table = Table(title=f"shipped experts ({report['machine']})")
    for column in ("case", "episodes", "survived", "distance m (mean, min-max)",
                   "return (mean, min-max)", "pose reward"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, case in report["cases"].items():
        s = case["summary"]
        pose = f"{s['pose_reward']['mean']:.3f}" if "pose_reward" in s else "-"
        table.add_row(
            name,
            str(s["episodes"]),
            f"{s['episodes'] - s['falls']}/{s['episodes']} ({100 * s['survival_rate']:.0f}%)",
            f"{s['distance']['mean']:.1f} ({s['distance']['min']:.1f}-{s['distance']['max']:.1f})",
            f"{s['return']['mean']:.0f} ({s['return']['min']:.0f}-{s['return']['max']:.0f})",
            pose,
        )
    Console(width=140).print(table)
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
