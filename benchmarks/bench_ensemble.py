"""Ensembles against single networks: behaviour cloning on the same data, several training
seeds, closed loop on the same held-out seeds.

    .venv/bin/python benchmarks/bench_ensemble.py [--task walk|run] [--seeds 0,1,2]
        [--members 5] [--episodes 100] [--eval-seed 2000] [--quick] [--results F]

The task's demonstrations (``bench_recipes.record_data``: for the walk the quickstart's 100
DART-0.005 episodes, for the run 50 DART-0.1 episodes, recorded once with seed 0) are fitted
with the task's recipe (``pipeline train`` without ``--config``) once per training seed as a
single network and once as an ensemble of ``--members`` (``model.ensemble=N``, the same
recipe and seed: member 0 is the single network of that seed). ``pipeline compare`` then
evaluates every policy on ``--episodes`` held-out seeds from ``--eval-seed``, the expert and a
random policy once beside them. Prints per group the mean survival and distance over the
training seeds with a 95% interval, worst and best, and each run's training time; writes
``benchmarks/results/bench_ensemble_<task>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench_recipes import PIPELINE, ROOT, record_data
from rich.console import Console
from rich.table import Table


def train(data: Path, out: Path, seed: int, extra: list[str]) -> float:
    """``pipeline train`` with the data's recipe; returns its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([str(PIPELINE), "train", "--data", str(data), "--out", str(out), "--seed",
                    str(seed), "--no-track", *extra],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", choices=("walk", "run"), default="walk")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--eval-seed", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 2 episodes, 1 seed")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    results = args.results or ROOT / "benchmarks" / "results" / f"bench_ensemble_{args.task}.json"
    extra: list[str] = []
    if args.quick:
        args.seeds, args.episodes, extra = "0", 2, ["training.epochs=2"]
    seeds = [int(s) for s in args.seeds.split(",")]
    data = record_data(args.task)
    groups = {"single": [], f"ensemble of {args.members}": []}
    train_s: dict[str, list[float]] = {name: [] for name in groups}

    from pipeline.stages.compare import CompareRequest, compare

    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for name, members in zip(groups, (1, args.members), strict=True):
                out = Path(tmp) / f"{name.replace(' ', '-')}-seed{seed}"
                train_s[name].append(train(data, out, seed, [*extra, f"model.ensemble={members}"]))
                groups[name].append(str(out))
                print(f"{name}, seed {seed}: trained in {train_s[name][-1]:.0f} s", flush=True)
        report = compare(CompareRequest(groups=groups, episodes=args.episodes,
                                        seed=args.eval_seed))  # fmt: skip
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "task": args.task, "data": str(data.relative_to(ROOT)),
        "args": vars(args) | {"results": str(results)},
        "expert_survival": report.expert["survival_rate"],
        "random_survival": report.random["survival_rate"],
        "groups": report.groups, "train_s": train_s,
        "policies": [{**row, "policy": Path(row["policy"]).name} for row in report.policies],
    }  # fmt: skip
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"results: {results}")
    return 0


def print_table(result: dict) -> None:
    table = Table(title=f"{result['task']}: behaviour cloning, single network against ensemble "
                  f"(expert survives {result['expert_survival']:.0%}, random "
                  f"{result['random_survival']:.0%})")  # fmt: skip
    for column in ("policies", "survival mean [95%]", "worst / best", "on expert's starts",
                   "norm. distance mean (worst)", "per seed", "train s (mean)"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, stats in result["groups"].items():
        survival, distance = stats["survival"], stats["normalized_distance"]
        per_seed = [row["survival"] for row in result["policies"] if row["group"] == name]
        times = result["train_s"][name]
        table.add_row(
            name, f"{survival['mean']:.1%} [+-{survival['ci95']:.1%}]",
            f"{survival['worst']:.0%} / {survival['best']:.0%}",
            f"{stats['survival_on_expert_starts']['mean']:.1%}",
            f"{distance['mean']:.2f} ({distance['worst']:.2f})",
            " / ".join(f"{v:.0%}" for v in per_seed), f"{sum(times) / len(times):.0f}",
        )  # fmt: skip
    Console(width=160).print(table)


if __name__ == "__main__":
    sys.exit(main())
