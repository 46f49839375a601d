"""Training recipes in closed loop: the README's example and ``pipeline train``'s defaults.

    .venv/bin/python benchmarks/bench_recipes.py [--quick] [--task walk|run] [--recipes a,b]
        [--seeds 0,1,2] [--episodes 100] [--eval-seed 2000] [--variant NAME=OVERRIDES]
        [--data F.h5] [--results F.json]

On the quickstart's data (100 HumanoidWalk demonstrations from random start phases with
DART noise 0.005, recorded with seed 0; recorded once into ``benchmarks/results/data/``;
``--task run``: 50 HumanoidRun demonstrations with DART noise 0.1),
each recipe is trained with several training seeds (``pipeline train`` in a subprocess, as
a user runs it) and evaluated on held-out seeds never used for recording or model choice
(2000-2099 by default), next to the expert and a uniform random policy on the same seeds.
Reports survival with its Wilson interval, survival on the starts the expert survives,
normalized distance ``(learner - random) / (expert - random)``, the mean over seeds and the
worst seed, and the held-out action error in raw action units. On the walk's seeds
1000-1039 it prints the peer's recorded figures on the same data and seeds beside ours
(HumanCompatibleAI/imitation's BC; the peer is not a dependency). Prints a table and
writes ``benchmarks/results/bench_recipes.json``.
"""

from __future__ import annotations

import argparse
import json
import math
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
RESULTS = ROOT / "benchmarks" / "results" / "bench_recipes.json"
WALK = "sim/HumanoidWalk-v0"
TASKS = {
    # task -> (env id, demonstrations recorded once with seed 0, DART noise, start phase)
    "walk": (WALK, 100, 0.005, "random"),
    # The run expert is robust to much more noise (0.3); 0.1 is what the BC curve used.
    "run": ("sim/HumanoidRun-v0", 50, 0.1, None),
}
PIPELINE = Path(sys.executable).parent / "pipeline"

OLD_WALK_MLP = ["model.name=mlp", "model.hidden_sizes=[512,512]", "model.activation=relu",
                "model.initializer=he_uniform", "data.val_fraction=0.2", "data.batch_size=256",
                "optimizer.learning_rate=0.001", "schedule.name=cosine",
                "schedule.decay_steps=20000", "schedule.warmup_steps=200", "schedule.alpha=0.05",
                "training.epochs=40", "training.early_stopping_patience=8",
                "training.restore_best=true"]  # fmt: skip
"""``configs/walk_mlp.yaml`` before 2026-12-02: a fifth of the episodes held out, early
stopping, and a cosine schedule that barely decays in the ~3,400 steps it runs."""

RECIPES: dict[str, list[str]] = {
    # `pipeline train --data walk.h5` without --config, the quickstart's training and
    # `configs/walk_mlp.yaml` (tests keep the three equal): the README's example.
    "walk recipe (now)": ["--config", "configs/walk_mlp.yaml"],
    # The same with left/right mirroring of half the training samples (sim.mirror's map).
    "walk recipe + mirror 0.5": [
        "--config",
        "configs/walk_mlp.yaml",
        "data.augment.mirror_prob=0.5",
    ],
    "walk_mlp (old)": OLD_WALK_MLP,
    # `pipeline train` without --config for data of an env without a recipe.
    "typed defaults": [],
    # `pipeline train` without --config before 2026-12-02: 256-256 MLP, constant rate.
    "built-in (old)": [
        "model.name=mlp",
        "model.hidden_sizes=[256,256]",
        "model.initializer=glorot_uniform",
        "schedule.name=constant",
        "data.val_fraction=0.2",
        "training.epochs=40",
        "training.early_stopping_patience=8",
        "training.restore_best=true",
    ],
}


def record_data(task: str) -> Path:
    """The task's demonstrations (for the walk: the quickstart's), recorded once."""
    env_id, episodes, noise, _ = TASKS[task]
    name = "quickstart-walk" if task == "walk" else task
    path = ROOT / "benchmarks" / "results" / "data" / f"{name}-dart{noise:g}-{episodes}.h5"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(PIPELINE), "record", "--env", env_id, "--episodes", str(episodes),
                        "--seed", "0", "--workers", "2", "--noise", str(noise), "--out",
                        str(path)], check=True)  # fmt: skip
    return path


def baselines(task: str, seeds: list[int]) -> dict:
    """Expert and uniform random policy on the evaluation seeds."""
    import gymnasium as gym

    import sim
    from pipeline.rollout.options import env_kwargs
    from pipeline.rollout.policies import ExpertPolicy, RandomPolicy
    from pipeline.rollout.workers import EpisodeTask, run_episodes

    env_id, _, _, start_phase = TASKS[task]
    kwargs = env_kwargs(env_id, start_phase)
    env = gym.make(env_id)
    low, high = env.action_space.low.astype(float), env.action_space.high.astype(float)
    env.close()
    tasks = [EpisodeTask(s) for s in seeds]
    expert = ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[env_id]))
    return {
        "expert": run_episodes(env_id, kwargs, expert, tasks, workers=2),
        "random": run_episodes(env_id, kwargs, RandomPolicy(low, high), tasks, workers=2),
    }


PEER_SPLIT = (0.2, 0)
"""(val_fraction, seed) of the split on which the peer's held-out action error was measured:
HumanCompatibleAI/imitation's BC (512-512, trained on the 80 training episodes of this
split) had an action MSE of 6.2e-5 in raw action units on its 20 validation episodes."""
PEER_HELDOUT_MSE = 6.2e-5

PEER_FIGURES = [
    # (method, survival per seed 0/1/2, normalized distance mean) on seeds 1000-1039 of the
    # quickstart's data, measured once with imitation 1.0.1 (not a dependency).
    ("imitation BC, defaults (32-32 tanh, batch 32), 100 episodes", (0.75, 0.70, 0.90), 0.80),
    ("imitation BC, 512-512 ReLU, batch 256, 40 epochs, 100 episodes", (0.90, 0.48, 0.93), 0.91),
]
"""The peer's recorded figures (survival per training seed, mean normalized distance)."""


def raw_action_mse(policy_dir: Path, data: Path, episode_ids: list[int]) -> float:
    """Mean squared error of the policy's actions against the recorded labels, in raw
    action units, over the given episodes."""
    import numpy as np

    from datasets import open_dataset
    from models import load_policy

    model = load_policy(policy_dir).model
    total, count = 0.0, 0
    with open_dataset(data) as ds:
        for episode_id in episode_ids:
            episode = ds.episode(episode_id)
            obs, actions = episode.observations[:-1], episode.actions
            predicted = np.asarray(model(obs.astype(np.float32)), dtype=np.float64)
            total += float(np.sum((predicted - actions) ** 2))
            count += actions.size
    return total / count


def heldout_errors(out: Path, data: Path) -> dict:
    """The run's own validation error and the error on the peer's validation episodes, both
    in raw action units (the latter is held out only when the run used the peer's split)."""
    from datasets import open_dataset
    from datasets.training.splits import split_episodes
    from pipeline.training.config import load_config

    config = load_config(out / "config.yaml")
    with open_dataset(data) as ds:
        ids = ds.episode_ids()
    if config.data.max_episodes is not None:
        ids = ids[: config.data.max_episodes]
    train_ids, val_ids = split_episodes(ids, config.data.val_fraction, config.seed)
    _, peer_val = split_episodes(ids, *PEER_SPLIT)
    return {
        "val_raw_mse": raw_action_mse(out / "policy", data, val_ids),
        "peer_val_raw_mse": raw_action_mse(out / "policy", data, peer_val),
        "peer_val_held_out": not set(peer_val) & set(train_ids),
    }


def train_and_evaluate(recipe: list[str], data: Path, seed: int, epochs: int | None,
                       episodes: int, eval_seed: int, base: dict, tmp: Path) -> dict:  # fmt: skip
    from pipeline.rollout.episodes import summarize
    from pipeline.stages.evaluate import EvaluateRequest, evaluate, expert_normalized_scores

    out = tmp / f"run-{seed}-{time.monotonic_ns()}"
    report_json = out.with_suffix(".json")
    extra = [f"training.epochs={epochs}"] if epochs else []
    start = time.perf_counter()
    subprocess.run([str(PIPELINE), "train", "--data", str(data), "--out", str(out),
                    "--seed", str(seed), "--no-track", "--json", str(report_json), *recipe,
                    *extra], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)  # fmt: skip
    train_s = time.perf_counter() - start
    trained = json.loads(report_json.read_text())
    report = evaluate(EvaluateRequest(policy=str(out), episodes=episodes, seed=eval_seed), None)
    learner = report.results["learner"]
    scores = expert_normalized_scores({"learner": learner, **base})
    summary = summarize(learner)
    return {
        "seed": seed, "train_s": train_s, "epochs": trained["epochs"],
        "train_episodes": trained["train_episodes"], "val_episodes": trained["val_episodes"],
        "best_val_mse": trained["best_val_loss"],
        "survival_rate": summary["survival_rate"], "survival_ci95": summary["survival_ci95"],
        "distance_m": summary["distance"]["mean"],
        "survival_on_expert_surviving_starts": scores["survival_on_expert_surviving_starts"],
        "normalized_distance": scores["normalized_distance"],
        "pose_reward": summary.get("pose_reward", {}).get("mean"),
        "on_policy_action_error": summary.get("action_error", {}).get("mean"),
        **heldout_errors(out, data),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="2 epochs, 4 episodes, 1 seed, 1 recipe"
    )
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--eval-seed", type=int, default=2000)
    parser.add_argument("--task", choices=sorted(TASKS), default="walk")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON to write")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=OVERRIDES",
        help="also run the walk recipe with space-separated overrides, e.g. "
        "'wide=model.hidden_sizes=[1024,1024]' (repeatable; selected by NAME in --recipes)",
    )
    args = parser.parse_args()
    for variant in args.variant:
        name, _, overrides = variant.partition("=")
        RECIPES[name] = [*RECIPES["walk recipe (now)"], *overrides.split()]
    names = args.recipes.split(",")[:1] if args.quick else args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {list(RECIPES)}")
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    episodes = 4 if args.quick else args.episodes
    epochs = 2 if args.quick else None
    data = args.data or record_data(args.task)
    eval_seeds = list(range(args.eval_seed, args.eval_seed + episodes))
    from pipeline.rollout.episodes import summarize

    base = baselines(args.task, eval_seeds)
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "task": TASKS[args.task][0], "data": str(data), "episodes": episodes,
        "eval_seeds": [eval_seeds[0], eval_seeds[-1]],
        "expert": summarize(base["expert"]), "random": summarize(base["random"]), "recipes": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows = [train_and_evaluate(RECIPES[name], data, s, epochs, episodes,
                                       args.eval_seed, base, Path(tmp)) for s in seeds]  # fmt: skip
            report["recipes"][name] = {"args": RECIPES[name], "seeds": rows}
            print(f"{name}: done", flush=True)
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print_table(report)
    print(f"results: {args.results}")
    return 0


def _mse(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def print_table(report: dict) -> None:
    expert, random = report["expert"], report["random"]
    table = Table(title=f"{report.get('task', WALK)}, {report['episodes']} held-out seeds "
                  f"{report['eval_seeds'][0]}-{report['eval_seeds'][1]}: expert survives "
                  f"{100 * expert['survival_rate']:.0f}% ({expert['distance']['mean']:.1f} m), "
                  f"random {100 * random['survival_rate']:.0f}% "
                  f"({random['distance']['mean']:.2f} m)")  # fmt: skip
    columns = ("recipe", "seed", "train/val eps", "epochs", "val loss", "val MSE raw",
               "peer-split MSE raw", "survival", "on expert's starts", "distance m",
               "norm. distance", "pose", "train s")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for name, entry in report["recipes"].items():
        rows = entry["seeds"]
        for r in rows:
            low, high = r["survival_ci95"]
            peer = _mse(r.get("peer_val_raw_mse")) + ("" if r.get("peer_val_held_out") else "*")
            table.add_row(name, str(r["seed"]), f"{r['train_episodes']}/{r['val_episodes']}",
                          str(r["epochs"]), f"{r['best_val_mse']:.4f}",
                          _mse(r.get("val_raw_mse")), peer,
                          f"{100 * r['survival_rate']:.0f}% [{100 * low:.0f}-{100 * high:.0f}]",
                          f"{100 * r['survival_on_expert_surviving_starts']:.0f}%",
                          f"{r['distance_m']:.1f}", f"{r['normalized_distance']:.2f}",
                          f"{r['pose_reward'] or math.nan:.2f}", f"{r['train_s']:.0f}")  # fmt: skip
        mean = {k: sum(r[k] for r in rows) / len(rows)
                for k in ("survival_rate", "normalized_distance")}  # fmt: skip
        worst = min(r["normalized_distance"] for r in rows)
        table.add_row(name, "mean", "", "", "", "", "", f"{100 * mean['survival_rate']:.0f}%",
                      "", "", f"{mean['normalized_distance']:.2f} (worst {worst:.2f})", "", "",
                      end_section=True)  # fmt: skip
    console = Console(width=200)
    console.print(table)
    console.print("* the peer's validation episodes were in this run's training split")
    if report.get("task", WALK) == WALK and report["eval_seeds"] == [1000, 1039]:
        peer = Table(title="the peer on the same data and seeds (recorded figures; held-out "
                     f"action MSE {PEER_HELDOUT_MSE:.1e} raw on its 80/20 split)")  # fmt: skip
        for column in ("method", "survival per seed", "mean survival", "mean norm. distance"):
            peer.add_column(column, justify="right")
        for method, survival, distance in PEER_FIGURES:
            per_seed = " / ".join(f"{100 * v:.0f}%" for v in survival)
            mean = f"{100 * sum(survival) / len(survival):.0f}%"
            peer.add_row(method, per_seed, mean, f"{distance:.2f}")
        console.print(peer)


if __name__ == "__main__":
    sys.exit(main())
