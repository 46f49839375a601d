"""Closed-loop checkpoint selection against keeping the last (or best-validation) weights.

    .venv/bin/python benchmarks/bench_selection.py [--recipes NAME,...] [--seeds 0,1,2,3,4]
        [--rollout-every 5] [--rollout-episodes 10] [--episodes 100] [--eval-seed 2000]
        [--keep-policies DIR] [--quick] [--results F]

On the quickstart's 100 DART-0.005 walk demonstrations, each recipe (``bench_recipes.py``'s
names) is trained with every training seed once, with ``training.rollout_every`` on: the run
saves the best-scored epoch as ``policy`` and, where that differs, what it would have saved
without selection as ``policy_without_selection`` (the last epoch; the best validation
epoch for the old built-in default, which restores it). The checks run on seeds 900000+
(``training.rollout_seed``); both policies are then evaluated on
``--episodes`` held-out seeds from ``--eval-seed`` next to the expert and a random policy on
the same seeds. Prints worst, median and best survival and distance per recipe with and
without selection, and the rank correlation between validation loss and rollout score over
each run's checks; writes ``benchmarks/results/bench_selection.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench_recipes import PIPELINE, RECIPES, ROOT, baselines, record_data
from rich.console import Console
from rich.table import Table

RESULTS = ROOT / "benchmarks" / "results" / "bench_selection.json"
DEFAULT_RECIPES = "walk recipe (now),built-in (old)"


def closed_loop(policy: Path, episodes: int, eval_seed: int, base: dict) -> dict:
    from pipeline.rollout.episodes import summarize
    from pipeline.stages.evaluate import EvaluateRequest, evaluate, expert_normalized_scores

    report = evaluate(EvaluateRequest(policy=str(policy), episodes=episodes, seed=eval_seed), None)
    learner = report.results["learner"]
    scores = expert_normalized_scores({"learner": learner, **base})
    summary = summarize(learner)
    return {
        "survival": summary["survival_rate"],
        "survival_on_expert_starts": scores["survival_on_expert_surviving_starts"],
        "normalized_distance": scores["normalized_distance"],
        "pose_reward": summary.get("pose_reward", {}).get("mean"),
    }  # fmt: skip


def recipe_slug(name: str) -> str:
    """The recipe's name as a folder name."""
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def run_one(name: str, recipe: list[str], data: Path, seed: int, args: argparse.Namespace,
            base: dict, tmp: Path) -> dict:  # fmt: skip
    out = tmp / f"run-{seed}-{time.monotonic_ns()}"
    report_json = out.with_suffix(".json")
    selection = [f"training.rollout_every={args.rollout_every}",
                 f"training.rollout_episodes={args.rollout_episodes}"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run([str(PIPELINE), "train", "--data", str(data), "--out", str(out), "--seed",
                    str(seed), "--no-track", "--json", str(report_json), *recipe, *selection],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)  # fmt: skip
    train_s = time.perf_counter() - start
    trained = json.loads(report_json.read_text())
    selected = closed_loop(out / "policy", args.episodes, args.eval_seed, base)
    last_dir = out / "policy_without_selection"
    # None written: selection chose the weights the run would have saved anyway.
    last = (
        closed_loop(last_dir, args.episodes, args.eval_seed, base)
        if last_dir.is_dir()
        else selected
    )
    if args.keep_policies is not None:
        target = args.keep_policies / f"{recipe_slug(name)}-seed{seed}"
        for name in ("policy", "policy_without_selection"):
            if (out / name).is_dir():
                shutil.copytree(out / name, target / name, dirs_exist_ok=True)
    return {
        "seed": seed, "train_s": train_s, "epochs": trained["epochs"],
        "selected_epoch": trained["selected_epoch"],
        "rank_correlation": trained["rank_correlation"], "checks": trained["rollouts"],
        "with_selection": selected, "without_selection": last,
    }  # fmt: skip


def jsonable(value: object) -> object:
    """What JSON gets for NumPy numbers and paths."""
    return str(value) if isinstance(value, Path) else float(value)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipes", default=DEFAULT_RECIPES)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--rollout-every", type=int, default=5)
    parser.add_argument("--rollout-episodes", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--eval-seed", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 2 episodes, 1 seed")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--keep-policies", type=Path, default=None,
                        help="copy each run's policies to DIR/<recipe>-seedS/")  # fmt: skip
    args = parser.parse_args()
    names = args.recipes.split(",")
    extra: list[str] = []
    if args.quick:
        args.seeds, args.episodes, args.rollout_every, args.rollout_episodes = "0", 2, 1, 2
        names, extra = names[:1], ["training.epochs=2"]
    data = record_data("walk")
    seeds = [int(s) for s in args.seeds.split(",")]
    base = baselines("walk", [args.eval_seed + i for i in range(args.episodes)])
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "data": str(data.relative_to(ROOT)), "args": vars(args) | {"results": str(args.results)},
        "expert_survival": sum(not r.fell for r in base["expert"]) / len(base["expert"]),
        "recipes": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            runs = report["recipes"].setdefault(name, [])
            for seed in seeds:
                runs.append(run_one(name, [*RECIPES[name], *extra], data, seed, args, base,
                                    Path(tmp)))  # fmt: skip
                args.results.parent.mkdir(parents=True, exist_ok=True)
                args.results.write_text(json.dumps(report, indent=2, default=jsonable) + "\n")
                print(f"{name} seed {seed}: done", flush=True)
    print_table(report)
    print(f"results: {args.results}")
    return 0


def print_table(report: dict) -> None:
    expert = report["expert_survival"]
    table = Table(title=f"closed-loop selection (held-out seeds; expert survives {expert:.0%})")
    for column in ("recipe", "saved weights", "survival worst / median / best",
                   "norm. distance worst / median / best", "rank corr. (per seed)"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, runs in report["recipes"].items():
        for key, label in (
            ("without_selection", "without selection"),
            ("with_selection", "selected"),
        ):
            survival = sorted(r[key]["survival"] for r in runs)
            distance = sorted(r[key]["normalized_distance"] for r in runs)
            corr = " ".join("-" if r["rank_correlation"] is None else
                            f"{r['rank_correlation']:+.2f}" for r in runs)  # fmt: skip
            table.add_row(name, label,
                          " / ".join(f"{v:.0%}" for v in (survival[0], statistics.median(survival),
                                                          survival[-1])),
                          " / ".join(f"{v:.2f}" for v in (distance[0], statistics.median(distance),
                                                          distance[-1])),
                          corr if key == "with_selection" else "")  # fmt: skip
    Console(width=160).print(table)


if __name__ == "__main__":
    sys.exit(main())
