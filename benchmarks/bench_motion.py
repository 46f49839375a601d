"""The course's motion-imitation lab on our character, and what it does in physics.

    .venv/bin/python benchmarks/bench_motion.py [--quick]

1. Fit: the lab's network (phase -> joint angles; Dense 75-50, leaky ReLU 0.01, linear
   output, Adam 1e-3, 30,000 full-batch steps on the walk clip's 39 key frames) against
   the activations the course compares (sigmoid, tanh, ReLU, leaky ReLU, ELU, SELU) and
   other widths, 3 seeds each: RMSE per joint group on 400 phases (mostly between key
   frames) and fit time. The lab network also on the backflip and jump clips.
2. Physics: each skill's lab fit replayed as open-loop PD targets, the clip itself as
   open-loop targets, the expert closed loop and, for the walk, a BC policy closed loop
   (25 demonstrations, the walk recipe), on 40 seeds (1000-1039) from random start
   phases: seconds standing and pose reward.

Prints tables and writes ``benchmarks/results/bench_motion.json``.
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
RESULTS = ROOT / "benchmarks" / "results" / "bench_motion.json"
VARIANTS = {
    "lab: leaky ReLU 75-50": [],
    "sigmoid 75-50": ["net.activation=sigmoid"],
    "tanh 75-50": ["net.activation=tanh"],
    "ReLU 75-50": ["net.activation=relu"],
    "ELU 75-50": ["net.activation=elu"],
    "SELU 75-50": ["net.activation=selu", "net.initializer=lecun_normal"],
    "leaky ReLU 16-8": ["net.hidden_sizes=[16,8]"],
    "leaky ReLU 256-128": ["net.hidden_sizes=[256,128]"],
    "leaky ReLU 75-50-25": ["net.hidden_sizes=[75,50,25]"],
}
GROUPS = ("torso", "legs", "arms", "all")


def fit(skill: str, overrides: list[str], seed: int, steps: int, out: Path):
    from pipeline.stages.motion.config import load_motion_config
    from pipeline.stages.motion.fit import fit_motion

    config = load_motion_config(None, [f"skill={skill}", f"seed={seed}", f"steps={steps}",
                                       *overrides])  # fmt: skip
    return fit_motion(config, out)


def main() -> int:
    from bench_skills import demonstrations, train_policy, validation_episodes

    import sim
    from pipeline.stages.motion.play import PlayRequest, play_motion

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 steps, 1 seed, 4 episodes")
    args = parser.parse_args()
    steps, seeds, episodes, demos, epochs = (
        (300, [0], 4, 3, 2) if args.quick else (30000, [0, 1, 2], 40, 25, None)
    )
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "steps": steps, "seeds": seeds, "episodes": episodes, "fits": {}, "skills": {},
        "physics": {},
    }  # fmt: skip
    out = RESULTS if not args.quick else RESULTS.with_name("bench_motion_quick.json")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name, overrides in VARIANTS.items():
            runs = [fit("walk", overrides, s, steps, tmp / f"{name}-{s}".replace(" ", "_"))
                    for s in seeds]  # fmt: skip
            report["fits"][name] = {
                "rmse": {g: mean(r.rmse[g] for r in runs) for g in GROUPS},
                "rmse_all_per_seed": [r.rmse["all"] for r in runs],
                "fit_s": mean(r.fit_s for r in runs),
                "final_loss": mean(r.final_loss for r in runs),
            }
            print(f"walk {name}: {report['fits'][name]['rmse']['all']:.4f} rad", flush=True)
            out.write_text(json.dumps(report, indent=2) + "\n")
        walk_policy, _ = train_policy(
            demonstrations("walk", demos + validation_episodes(demos)),
            sim.SKILLS["walk"].env_id, demos, 0, None, 0, epochs, tmp / "walk-bc")  # fmt: skip
        for skill in sim.SKILLS:
            lab = fit(skill, [], 0, steps, tmp / f"lab-{skill}")
            report["skills"][skill] = {"rmse": {g: lab.rmse[g] for g in GROUPS},
                                       "samples": lab.samples, "fit_s": lab.fit_s}  # fmt: skip
            played = play_motion(PlayRequest(
                motion=Path(lab.out_dir), episodes=episodes, seed=1000,
                policy=walk_policy if skill == "walk" else None))  # fmt: skip
            report["physics"][skill] = played.rows
            print(f"{skill}: played", flush=True)
            out.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)
    print(f"results: {out}")
    return 0


def print_tables(report: dict) -> None:
    console = Console()
    fits = Table(title=f"walk clip, phase -> joint angles, {report['steps']} full-batch steps, "
                       f"seeds {report['seeds']} (RMSE in degrees)")  # fmt: skip
    for column in ("network", *GROUPS, "per seed (all)", "fit s"):
        fits.add_column(column)
    for name, row in report["fits"].items():
        fits.add_row(name, *(f"{57.29578 * row['rmse'][g]:.2f}" for g in GROUPS),
                     " / ".join(f"{57.29578 * v:.2f}" for v in row["rmse_all_per_seed"]),
                     f"{row['fit_s']:.1f}")  # fmt: skip
    console.print(fits)
    physics = Table(title=f"physics, {report['episodes']} seeds from 1000, random start phase")
    for column in ("skill", "fit RMSE deg", "player", "survival", "seconds standing",
                   "pose reward"):  # fmt: skip
        physics.add_column(column)
    for skill, rows in report["physics"].items():
        rmse = f"{57.29578 * report['skills'][skill]['rmse']['all']:.2f}"
        for player, row in rows.items():
            physics.add_row(skill, rmse, player, f"{100 * row['survival_rate']:.0f}%",
                            f"{row['seconds_standing']:.2f} ({row['seconds_min']:.2f}-"
                            f"{row['seconds_max']:.2f})", f"{row['pose_reward']:.3f}")  # fmt: skip
    console.print(physics)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.exit(main())
