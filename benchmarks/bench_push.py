"""Push recovery: survival against the size of a lateral push, for the expert and groups of
learned policies on the same seeds.

    .venv/bin/python benchmarks/bench_push.py --task walk|run --group NAME=PATTERN ...
        [--impulses 0,2,4,6,8,10] [--episodes 40] [--seed 3000] [--quick] [--results F]

For each impulse (N*s on the torso, sideways, at a random moment of the gait, random side;
``pipeline evaluate --push``), ``pipeline compare`` runs every policy of every group, the
expert and a random policy on the same held-out seeds with the same pushes. Prints survival
per impulse (the expert's, and each group's mean over its policies with the worst and best)
and writes ``benchmarks/results/bench_push_<task>.json``.
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
IMPULSES = {"walk": "0,2,4,6,8,10", "run": "0,10,20,30,40,60"}


def jsonable(value: object) -> object:
    """What JSON gets for NumPy numbers and paths."""
    return str(value) if isinstance(value, Path) else float(value)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", choices=sorted(IMPULSES), default="walk")
    parser.add_argument("--group", action="append", default=[], help="NAME=PATTERN")
    parser.add_argument("--impulses", default=None)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="2 impulses, 2 episodes")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    impulses = [float(v) for v in (args.impulses or IMPULSES[args.task]).split(",")]
    if args.quick:
        impulses, args.episodes = impulses[::3][:2], 2
    results = args.results or ROOT / "benchmarks" / "results" / f"bench_push_{args.task}.json"

    from pipeline.stages.compare import CompareRequest, compare, parse_groups

    groups = parse_groups(args.group, [])
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "args": vars(args) | {"results": str(results)}, "groups": groups, "impulses": [],
    }  # fmt: skip
    for impulse in impulses:
        compared = compare(CompareRequest(groups=groups, episodes=args.episodes, seed=args.seed,
                                          workers=2, push=f"{impulse:g}"))  # fmt: skip
        report["impulses"].append({
            "impulse": impulse, "expert_survival": compared.expert["survival_rate"],
            "random_survival": compared.random["survival_rate"],
            "groups": {name: group["survival"] for name, group in compared.groups.items()},
            "policies": compared.policies,
        })  # fmt: skip
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(report, indent=2, default=jsonable) + "\n")
        print(f"{impulse:g} N*s: done", flush=True)
    print_table(report)
    print(f"results: {results}")
    return 0


def print_table(report: dict) -> None:
    table = Table(title="survival against a lateral push at a random gait moment")
    table.add_column("impulse (N*s)", justify="right")
    table.add_column("expert", justify="right")
    names = list(report["groups"])
    for name in names:
        table.add_column(f"{name}: mean (worst-best)", justify="right")
    for row in report["impulses"]:
        cells = [f"{row['impulse']:g}", f"{row['expert_survival']:.0%}"]
        for name in names:
            group = row["groups"][name]
            cells.append(f"{group['mean']:.0%} ({group['worst']:.0%}-{group['best']:.0%})")
        table.add_row(*cells)
    Console(width=160).print(table)


if __name__ == "__main__":
    sys.exit(main())
