"""Transfer between skills: does a walk policy help to learn a backflip or a jump?

    .venv/bin/python benchmarks/bench_transfer.py [--quick] [--skills backflip,jump]

The source is one walk policy: the walk recipe trained on 25 walk demonstrations (the data
of ``bench_skills.py``), training seed 0. For the backflip and the jump, from the first
1, 5 and 25 of 25 expert demonstrations (plus a quarter as many for validation, at least
one), each with the skill's recipe and training seeds 0, 1, 2:

- ``scratch``: initial weights from the seed;
- ``fine-tune``: every layer starts from the walk policy (``--init-from``), all train;
- ``freeze 1``: the same with the first hidden block fixed (``--freeze 1``);
- ``freeze 2``: both hidden blocks fixed, only the output layer trains (feature extraction).

Normalization comes from the new data in all four. Each policy runs on 40 held-out seeds
(1000-1039) from random start phases; the expert and a random policy run the same seeds
once per skill. Prints a table and writes ``benchmarks/results/bench_transfer.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from statistics import mean

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_transfer.json"
VARIANTS = {"scratch": None, "fine-tune": 0, "freeze 1": 1, "freeze 2": 2}
"""Variant -> frozen hidden blocks when starting from the walk policy (None: from scratch)."""


def main() -> int:
    from bench_skills import demonstrations, experts, score, train_policy, validation_episodes

    import sim

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 and 3 demos, 4 seeds, 2 epochs")
    parser.add_argument("--skills", default="backflip,jump")
    args = parser.parse_args()
    counts, episodes, training_seeds, epochs, demos = (
        ([1, 3], 4, [0], 2, 5) if args.quick else ([1, 5, 25], 40, [0, 1, 2], None, 25)
    )
    need = demos + validation_episodes(demos)
    seeds = list(range(1000, 1000 + episodes))
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "seeds": [seeds[0], seeds[-1]], "counts": counts, "training_seeds": training_seeds,
        "skills": {},
    }  # fmt: skip
    out = RESULTS if not args.quick else RESULTS.with_name("bench_transfer_quick.json")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        walk = sim.SKILLS["walk"].env_id
        source, source_s = train_policy(demonstrations("walk", need), walk, demos, 0, None, 0,
                                        epochs, tmp / "walk-source")  # fmt: skip
        report["source"] = {"demos": demos, "train_s": source_s,
                            **score(source, seeds, experts("walk", seeds, 2)[1])}  # fmt: skip
        print(f"walk source: {report['source']['survival_rate']:.0%} survival", flush=True)
        for name in args.skills.split(","):
            env_id = sim.SKILLS[name].env_id
            entry, base = experts(name, seeds, 2)
            data = demonstrations(name, need)
            entry["cells"] = []
            for n in counts:
                for variant, freeze in VARIANTS.items():
                    for seed in training_seeds:
                        policy, train_s = train_policy(
                            data, env_id, n, seed, None if freeze is None else source,
                            freeze or 0, epochs, tmp / f"{name}-{n}-{variant}-{seed}")  # fmt: skip
                        entry["cells"].append({"demos": n, "variant": variant, "seed": seed,
                                               "train_s": train_s,
                                               **score(policy, seeds, base)})  # fmt: skip
                    print(f"{name} {n} demos {variant}: done", flush=True)
                    report["skills"][name] = entry
                    out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print_table(report)
    print(f"results: {out}")
    return 0


def print_table(report: dict) -> None:
    table = Table(title=f"transfer from the walk, seeds {report['seeds'][0]}-{report['seeds'][1]}")
    for column in ("skill", "demos", "start", "survival per seed", "mean", "pose reward",
                   "normalized pose"):  # fmt: skip
        table.add_column(column)
    for name, entry in report["skills"].items():
        expert = entry["expert"]
        table.add_row(name, "-", "expert", "-", f"{100 * expert['survival_rate']:.0f}%",
                      f"{expert['pose_reward']:.2f}", "1")  # fmt: skip
        groups: dict[tuple[int, str], list[dict]] = {}
        for cell in entry["cells"]:
            groups.setdefault((cell["demos"], cell["variant"]), []).append(cell)
        for (n, variant), cells in groups.items():
            table.add_row(name, str(n), variant,
                          " / ".join(f"{100 * c['survival_rate']:.0f}" for c in cells),
                          f"{100 * mean(c['survival_rate'] for c in cells):.0f}%",
                          f"{mean(c['pose_reward'] for c in cells):.2f}",
                          f"{mean(c['normalized_pose_reward'] for c in cells):.2f}")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.exit(main())
