"""Behaviour-cloning learning curve: closed-loop quality vs number of demonstrations.

    .venv/bin/python benchmarks/bench_bc_curve.py [--quick] [--tasks walk,run]

For HumanoidRun and HumanoidWalk (random start phase), plain demonstrations and DART
(noise-injected) ones: train the default MLP (``pipeline train`` defaults) on the first n
demonstrations, n in 1, 5, 10, 25, 50, with a fixed-size validation split beside them, and
evaluate it on 40 held-out seeds (1000-1039). The expert and a random policy run the same
seeds once per task, giving expert-normalized distance, survival on the starts the expert
survives, and the on-policy action error (expert relabels of the learner's states) next to
the validation error. Demonstrations are recorded once into ``benchmarks/results/data/``.
Prints a table and writes ``benchmarks/results/bench_bc_curve.json``.
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
RESULTS = ROOT / "benchmarks" / "results" / "bench_bc_curve.json"
DATA = ROOT / "benchmarks" / "results" / "data"
TASKS = {"walk": "sim/HumanoidWalk-v0", "run": "sim/HumanoidRun-v0"}
DART_NOISE = {"walk": 0.005, "run": 0.1}
"""Noise per task, in expert action scales: the walk expert falls in 47% of episodes at
0.005 already; the run expert is robust to 0.3."""


def validation_episodes(n: int) -> int:
    return max(1, round(n / 4))


def demonstrations(task: str, noise: float, episodes: int) -> Path:
    from pipeline.stages.record import RecordConfig, record

    tag = f"dart{noise:g}" if noise else "plain"
    path = DATA / f"curve-{task}-{tag}-{episodes}.h5"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        record(RecordConfig(out=path, env_id=TASKS[task], episodes=episodes, seed=0,
                            workers=2, noise=noise))  # fmt: skip
    return path


def baselines(task: str, seeds: list[int]) -> dict:
    """Expert and random policy on the evaluation seeds."""
    import gymnasium as gym

    import sim
    from pipeline.rollout.options import env_kwargs
    from pipeline.rollout.policies import ExpertPolicy, RandomPolicy
    from pipeline.rollout.workers import EpisodeTask, run_episodes

    env_id = TASKS[task]
    kwargs = env_kwargs(env_id, "random" if task == "walk" else None)
    env = gym.make(env_id)
    low, high = env.action_space.low.astype(float), env.action_space.high.astype(float)
    env.close()
    tasks = [EpisodeTask(s) for s in seeds]
    expert = ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[env_id]))
    random = RandomPolicy(low, high)
    return {
        "expert": run_episodes(env_id, kwargs, expert, tasks, workers=2),
        "random": run_episodes(env_id, kwargs, random, tasks, workers=2),
    }


def point(data: Path, n: int, epochs: int, episodes: int, seed0: int, base: dict, tmp: Path):
    from pipeline.algorithms.behaviour_cloning import train_from_file
    from pipeline.rollout.episodes import summarize
    from pipeline.stages.evaluate import EvaluateRequest, evaluate, expert_normalized_scores
    from pipeline.training.config import load_config

    v = validation_episodes(n)
    config = load_config(None, [f"data.max_episodes={n + v}", f"data.val_fraction={v / (n + v)}",
                                f"training.epochs={epochs}"])  # fmt: skip
    out = tmp / f"{data.stem}-{n}"
    start = time.perf_counter()
    trained = train_from_file(data, config, out, tracking_uri=None)
    train_s = time.perf_counter() - start
    assert trained.train_episodes == n, (trained.train_episodes, n)
    report = evaluate(EvaluateRequest(policy=str(out), episodes=episodes, seed=seed0), None)
    learner = report.results["learner"]
    scores = expert_normalized_scores({"learner": learner, **base})
    summary = summarize(learner)
    return {
        "demos": n, "train_steps": trained.train_samples, "val_episodes": v,
        "best_val_mse": trained.best_val_loss, "train_s": train_s,
        "survival_rate": summary["survival_rate"], "survival_ci95": summary["survival_ci95"],
        "survived_s": summary["survived_s"]["mean"],
        "survival_on_expert_surviving_starts": scores["survival_on_expert_surviving_starts"],
        "expert_surviving_starts": scores["expert_surviving_starts"],
        "normalized_distance": scores["normalized_distance"],
        "normalized_return": scores["normalized_return"],
        "on_policy_action_error": summary.get("action_error", {}).get("mean"),
        "action_error_by_second": summary.get("action_error_by_second"),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 points, 6 episodes, 3 epochs")
    parser.add_argument("--tasks", default="run,walk")
    args = parser.parse_args()
    counts, episodes, epochs = ([1, 5], 6, 3) if args.quick else ([1, 5, 10, 25, 50], 40, 40)
    seeds = list(range(1000, 1000 + episodes))
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "episodes": episodes, "seeds": [seeds[0], seeds[-1]], "epochs": epochs,
        "dart_noise": DART_NOISE, "tasks": {},
    }  # fmt: skip
    from pipeline.rollout.episodes import summarize

    with tempfile.TemporaryDirectory() as tmp_dir:
        for task in args.tasks.split(","):
            base = baselines(task, seeds)
            entry = {name: summarize(results) for name, results in base.items()}
            entry["curves"] = {}
            for noise in (0.0, DART_NOISE[task]):
                need = max(counts) + validation_episodes(max(counts))
                data = demonstrations(task, noise, need)
                label = f"dart {noise:g}" if noise else "plain"
                entry["curves"][label] = [point(data, n, epochs, episodes, seeds[0], base,
                                                Path(tmp_dir)) for n in counts]  # fmt: skip
                print(f"{task} {label}: done", flush=True)
            report["tasks"][task] = entry
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(report, indent=2, default=float) + "\n")

    console = Console(width=150)
    for task, entry in report["tasks"].items():
        expert = entry["expert"]
        table = Table(title=f"{TASKS[task]}: default MLP, {episodes} held-out episodes; expert "
                      f"survives {100 * expert['survival_rate']:.0f}%, random "
                      f"{100 * entry['random']['survival_rate']:.0f}%")  # fmt: skip
        for column in ("demos", "data", "steps", "val MSE", "on-policy error", "survival",
                       "on expert's starts", "norm. distance", "norm. return"):  # fmt: skip
            table.add_column(column, justify="right")
        for label, rows in entry["curves"].items():
            for r in rows:
                low, high = r["survival_ci95"]
                table.add_row(str(r["demos"]), label, str(r["train_steps"]),
                              f"{r['best_val_mse']:.4f}", f"{r['on_policy_action_error']:.3f}",
                              f"{100 * r['survival_rate']:.0f}% [{100 * low:.0f}-{100 * high:.0f}]",
                              f"{100 * r['survival_on_expert_surviving_starts']:.0f}%",
                              f"{r['normalized_distance']:.2f}",
                              f"{r['normalized_return']:.2f}")  # fmt: skip
        console.print(table)
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
