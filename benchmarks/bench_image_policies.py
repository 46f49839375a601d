"""Policies that see, in closed loop: image+state and image-only ``cnn2d`` against the
state-only MLP, trained on the same demonstrations.

    .venv/bin/python benchmarks/bench_image_policies.py [--tasks walk,run] [--seeds 0,1,2]
        [--episodes 40] [--eval-seed 3000] [--camera 64x64] [--epochs N] [--quick]

Per task the demonstrations of ``bench_recipes`` (walk: 100 from random start phases, DART
noise 0.005; run: 50, DART 0.1; recording seed 0) are recorded once more with a follow
camera (``pipeline record --camera``; the camera changes no state: the observations equal
the plain recording's). Each arm is trained with every training seed by ``pipeline train``
in a subprocess: the MLP with ``configs/<task>_mlp.yaml``, the image policies with
``configs/cnn2d.yaml`` (``model.inputs=image`` for image-only). Every policy is evaluated on
held-out seeds (3000-3039 by default) next to the expert and a uniform random policy on the
same seeds; image policies render their camera each step. Prints a table and writes
``benchmarks/results/bench_image_policies.json``.
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

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_recipes import TASKS, baselines  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_image_policies.json"
PIPELINE = Path(sys.executable).parent / "pipeline"
ARMS = {
    # arm -> (config file or None for the task's MLP recipe, overrides)
    "MLP (state)": (None, []),
    "cnn2d image+state": ("configs/cnn2d.yaml", []),
    "cnn2d image only": ("configs/cnn2d.yaml", ["model.inputs=image"]),
}


def camera_data(task: str, camera: str, episodes: int | None) -> Path:
    """The task's benchmark demonstrations recorded with a follow camera, once."""
    env_id, default_episodes, noise, start_phase = TASKS[task]
    episodes = episodes or default_episodes
    name = f"{task}-dart{noise:g}-{episodes}-camera{camera}.h5"
    path = ROOT / "benchmarks" / "results" / "data" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = ["--start-phase", start_phase] if start_phase else []
        subprocess.run([str(PIPELINE), "record", "--env", env_id, "--episodes", str(episodes),
                        "--seed", "0", "--workers", "2", "--noise", str(noise), "--camera",
                        camera, "--out", str(path), *extra], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    return path


def train_and_evaluate(task: str, arm: str, data: Path, seed: int, epochs: int | None,
                       episodes: int, eval_seed: int, base: dict, tmp: Path) -> dict:  # fmt: skip
    from pipeline.rollout.episodes import summarize
    from pipeline.stages.evaluate import EvaluateRequest, evaluate, expert_normalized_scores

    config, overrides = ARMS[arm]
    config = config or f"configs/{task}_mlp.yaml"
    out = tmp / f"{task}-{arm.replace(' ', '_')}-{seed}"
    report_json = out.with_suffix(".json")
    extra = [f"training.epochs={epochs}"] if epochs else []
    start = time.perf_counter()
    subprocess.run([str(PIPELINE), "train", "--data", str(data), "--out", str(out), "--config",
                    config, "--seed", str(seed), "--no-track", "--json", str(report_json),
                    *overrides, *extra], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    train_s = time.perf_counter() - start
    trained = json.loads(report_json.read_text())
    start = time.perf_counter()
    report = evaluate(EvaluateRequest(policy=str(out), episodes=episodes, seed=eval_seed), None)
    eval_s = time.perf_counter() - start
    learner = report.results["learner"]
    scores = expert_normalized_scores({"learner": learner, **base})
    summary = summarize(learner)
    return {
        "seed": seed, "train_s": train_s, "eval_s": eval_s, "epochs": trained["epochs"],
        "samples_per_s": trained.get("samples_per_s"), "best_val_mse": trained["best_val_loss"],
        "survival_rate": summary["survival_rate"], "survival_ci95": summary["survival_ci95"],
        "survived_s": summary["survived_s"]["mean"], "distance_m": summary["distance"]["mean"],
        "survival_on_expert_surviving_starts": scores["survival_on_expert_surviving_starts"],
        "normalized_distance": scores["normalized_distance"],
        "normalized_return": scores.get("normalized_return"),
        "pose_reward": summary.get("pose_reward", {}).get("mean"),
        "on_policy_action_error": summary.get("action_error", {}).get("mean"),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default="walk,run")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--episodes", type=int, default=40, help="evaluation episodes")
    parser.add_argument("--eval-seed", type=int, default=3000)
    parser.add_argument("--camera", default="64x64")
    parser.add_argument("--epochs", type=int, default=None, help="override every arm's epochs")
    parser.add_argument("--demos", type=int, default=None, help="override the demonstrations")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, few of all")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args.quick:
        args.seeds, args.episodes, args.epochs, args.demos = "0", 4, 1, 4
    seeds = [int(s) for s in args.seeds.split(",")]
    eval_seeds = list(range(args.eval_seed, args.eval_seed + args.episodes))
    report: dict = {"machine": platform.node(), "cpus": os.cpu_count(),
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "camera": args.camera, "eval_seeds": [eval_seeds[0], eval_seeds[-1]],
                    "tasks": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        for task in args.tasks.split(","):
            data = camera_data(task, args.camera, args.demos)
            base = baselines(task, eval_seeds)
            from pipeline.rollout.episodes import summarize
            from pipeline.stages.evaluate import expert_normalized_scores  # noqa: F401

            entry = {"data": str(data.relative_to(ROOT)),
                     "expert_survival": summarize(base["expert"])["survival_rate"],
                     "expert_distance_m": summarize(base["expert"])["distance"]["mean"],
                     "random_survival": summarize(base["random"])["survival_rate"],
                     "arms": {}}  # fmt: skip
            report["tasks"][task] = entry
            for arm in args.arms.split(","):
                rows = entry["arms"].setdefault(arm, [])
                for seed in seeds:
                    row = train_and_evaluate(task, arm, data, seed, args.epochs, args.episodes,
                                             args.eval_seed, base, Path(tmp))  # fmt: skip
                    rows.append(row)
                    print(f"{task} {arm} seed {seed}: survival {row['survival_rate']:.0%}, "
                          f"norm. distance {row['normalized_distance']:.2f}, "
                          f"train {row['train_s']:.0f} s", flush=True)  # fmt: skip
                    args.results.parent.mkdir(parents=True, exist_ok=True)
                    args.results.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print_table(report)
    return 0


def print_table(report: dict) -> None:
    table = Table(title=f"closed loop, camera {report['camera']}, eval seeds "
                        f"{report['eval_seeds'][0]}-{report['eval_seeds'][1]}")  # fmt: skip
    for column in ("task", "policy", "survival per seed", "mean", "on expert's starts",
                   "norm. distance", "train s", "samples/s"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("task", "policy") else "right")
    for task, entry in report["tasks"].items():
        table.add_row(task, "expert", f"{entry['expert_survival']:.0%}", "", "", "1.00", "", "")
        for arm, rows in entry["arms"].items():
            survival = [r["survival_rate"] for r in rows]
            expert_starts = [r["survival_on_expert_surviving_starts"] for r in rows]
            distance = [r["normalized_distance"] for r in rows]
            speed = [r["samples_per_s"] or 0.0 for r in rows]
            table.add_row(task, arm, "/".join(f"{s:.0%}" for s in survival),
                          f"{sum(survival) / len(rows):.0%}",
                          f"{sum(expert_starts) / len(rows):.0%}",
                          f"{sum(distance) / len(rows):.2f}",
                          f"{sum(r['train_s'] for r in rows) / len(rows):.0f}",
                          f"{sum(speed) / len(rows):.0f}")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    raise SystemExit(main())
