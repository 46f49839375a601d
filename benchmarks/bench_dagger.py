"""DAgger against behaviour cloning at the same number of expert labels, in closed loop.

    .venv/bin/python benchmarks/bench_dagger.py [--task walk|run] [--seeds 0,1,2]
        [--init-demos 10] [--iterations 4] [--episodes-per-iteration 5] [--beta 0.5]
        [--beta-decay 0.5] [--max-labels L] [--episode-seconds S] [--lead-seconds S]
        [--lead-share P]
        [--init-seconds S]
        [--eval-episodes 40]
        [--eval-seed 1000] [--final-episodes 0] [--final-seed 2000]
        [--final-fits 0] [--final-fit-epochs E] [--selection-episodes 200]
        [--selection-seed 3000]
        [--train-override KEY=VALUE ...] [--no-bc] [--no-dagger] [--keep-policies DIR]
        [--bc-curve N1,N2,...] [--quick] [--results F]

For each training seed S: record ``init-demos`` expert demonstrations with DART noise
(walk 0.005, run 0.1; recording seed S), run ``pipeline dagger`` from them (the env's
training recipe, training seed S, rollout seed S), and train plain BC on
``init-demos + iterations x episodes-per-iteration`` DART demonstrations of the same
recording seed, about as many expert labels as DAgger used in all (with ``--max-labels``:
as many demonstrations as DAgger's labels fill). Both are evaluated on the same held-out
seeds as the expert and a uniform random policy (the DAgger curve on ``--eval-seed``, every
iteration). With ``--final-episodes N`` the final DAgger and BC policies are also evaluated
on N further seeds from ``--final-seed`` that no iteration saw, with the expert and random
on the same seeds (the headline). ``--final-fits K`` (with ``--final-fit-epochs``,
``--selection-episodes``, ``--selection-seed``) makes DAgger publish the best of its last
policy and K fits from scratch on selection seeds (``pipeline dagger --final-fits``); the
candidates' scores are in the results. ``--train-override`` adds training settings to the
recipe (e.g. ``data.augment.mirror_prob=0.5`` for DAgger+mirror). ``--bc-curve`` adds the
behaviour-cloning learning curve of each training seed: the recipe trained on the first N
plain and the first N DART demonstrations (recording seed S) for each N, on the same
evaluation seeds (``--no-dagger``: the curve alone). Prints a table (per seed and the
mean over seeds) and writes ``benchmarks/results/bench_dagger.json``;
``plot_label_curves.py`` draws the curves.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_dagger.json"
TASKS = {"walk": ("sim/HumanoidWalk-v0", 0.005), "run": ("sim/HumanoidRun-v0", 0.1)}


def record_demos(env_id: str, noise: float, episodes: int, seed: int, out: Path,
                 episode_seconds: float | None = None) -> Path:  # fmt: skip
    from pipeline.stages.record import RecordConfig, record

    out.parent.mkdir(parents=True, exist_ok=True)
    record(RecordConfig(out=out, env_id=env_id, episodes=episodes, seed=seed, noise=noise,
                        workers=2, episode_seconds=episode_seconds))  # fmt: skip
    return out


def init_seconds(args: argparse.Namespace) -> float | None:
    """Length of the initial demonstrations: ``--init-seconds`` (0 = the env's full
    episodes), else ``--episode-seconds``."""
    if args.init_seconds is None:
        return args.episode_seconds
    return args.init_seconds or None


def labels_of(path: Path, episodes: int | None = None) -> int:
    """Expert-labelled steps of the file's first ``episodes`` episodes (all by default)."""
    from datasets import open_dataset

    with open_dataset(path) as ds:
        return sum(info.total_steps for info in ds.episode_infos()[:episodes])


def closed_loop(policy: Path, episodes: int, seed: int) -> dict:
    """The policy, the expert and a random policy on the same seeds."""
    from pipeline.stages.evaluate import EvaluateRequest, evaluate

    report = evaluate(EvaluateRequest(policy=str(policy), episodes=episodes, seed=seed,
                                      workers=2, compare_expert=True), None)  # fmt: skip
    learner, expert = report.summaries["learner"], report.summaries["expert"]
    return {
        "episodes": episodes, "seed": seed, "survival": learner["survival_rate"],
        "survival_on_expert_starts": report.scores["survival_on_expert_surviving_starts"],
        "normalized_distance": report.scores["normalized_distance"],
        "pose_reward": (learner.get("pose_reward") or {}).get("mean"),
        "expert_survival": expert["survival_rate"],
        "expert_pose_reward": (expert.get("pose_reward") or {}).get("mean"),
        "random_survival": report.summaries["random"]["survival_rate"],
    }  # fmt: skip


def bc_curve(env_id: str, noise: float, demos: list[int], seed: int, work: Path,
             args: argparse.Namespace) -> list[dict]:  # fmt: skip
    """BC on the first n plain and the first n DART demonstrations, for each n."""
    rows = []
    for label, scale in (("BC", 0.0), ("BC+DART", noise)):
        data = record_demos(env_id, scale, max(demos), seed, work / f"curve-{scale:g}.h5")
        for n in demos:
            overrides = [*args.train_override, f"data.max_episodes={n}"]
            out = work / f"curve-{scale:g}-{n}"
            row = bc_row(data, seed, out, args.eval_episodes, args.eval_seed, overrides,
                         labels=labels_of(data, n))  # fmt: skip
            rows.append({"method": label, "noise": scale, "demos": n, **row})
            shutil.rmtree(out, ignore_errors=True)
    return rows


def bc_row(
    data: Path, seed: int, out: Path, eval_episodes: int, eval_seed: int, overrides: list[str],
    labels: int | None = None,
) -> dict:  # fmt: skip
    from datasets import open_dataset
    from pipeline.algorithms.behaviour_cloning import train_from_file
    from pipeline.algorithms.train_config import TrainOptions, resolve_train_config

    with open_dataset(data) as ds:
        env_id = ds.metadata.env_id
    config = resolve_train_config(overrides=overrides, env_id=env_id,
                                  options=TrainOptions(seed=seed, no_track=True))  # fmt: skip
    start = time.perf_counter()
    train_from_file(data, config, out)
    fit_s = time.perf_counter() - start
    return {"labels": labels if labels is not None else labels_of(data), "fit_s": fit_s,
            **closed_loop(out, eval_episodes, eval_seed)}  # fmt: skip


def jsonable(value: object) -> object:
    """What JSON gets for NumPy numbers and paths."""
    return str(value) if isinstance(value, Path) else float(value)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", choices=sorted(TASKS), default="walk")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--init-demos", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--episodes-per-iteration", type=int, default=5)
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--beta-decay", type=float, default=0.5)
    parser.add_argument("--max-labels", type=int, default=None)
    parser.add_argument("--episode-seconds", type=float, default=None,
                        help="length of DAgger's rollouts (and of the initial demos unless "
                        "--init-seconds); evaluation keeps the env's")  # fmt: skip
    parser.add_argument("--lead-seconds", type=float, default=0.0,
                        help="the learner alone drives up to this long before each "
                        "labelled rollout window (pipeline dagger --lead-seconds)")  # fmt: skip
    parser.add_argument("--lead-share", type=float, default=1.0,
                        help="the probability that a rollout has a lead")  # fmt: skip
    parser.add_argument("--init-seconds", type=float, default=None,
                        help="length of the initial demos (default: --episode-seconds; 0: "
                        "the env's full episodes)")  # fmt: skip
    parser.add_argument("--eval-episodes", type=int, default=40)
    parser.add_argument("--eval-seed", type=int, default=1000)
    parser.add_argument("--final-episodes", type=int, default=0)
    parser.add_argument("--final-seed", type=int, default=2000)
    parser.add_argument("--final-fits", type=int, default=0)
    parser.add_argument("--final-fit-epochs", type=int, default=None)
    parser.add_argument("--selection-episodes", type=int, default=200)
    parser.add_argument("--selection-seed", type=int, default=3000)
    parser.add_argument("--train-override", action="append", default=[])
    parser.add_argument("--no-bc", action="store_true", help="DAgger only")
    parser.add_argument("--no-dagger", action="store_true", help="only the --bc-curve")
    parser.add_argument(
        "--bc-curve",
        default=None,
        help="demonstration counts of the BC and BC+DART curve, e.g. 5,10,20",
    )
    parser.add_argument("--keep-policies", type=Path, default=None,
                        help="copy the final policies to DIR/<task>-seedS-{dagger,bc}, and "
                        "DAgger's aggregate file beside its policy")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 demos, 1 iteration")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.init_demos, args.iterations = "0", 2, 1
        args.episodes_per_iteration, args.eval_episodes = 1, 2

    from pipeline.algorithms.dagger import AGGREGATE_FILE, dagger
    from pipeline.algorithms.dagger_config import DaggerConfig
    from pipeline.algorithms.train_config import TrainOptions, resolve_train_config

    env_id, noise = TASKS[args.task]
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "task": env_id, "noise": noise, "args": vars(args) | {"results": str(args.results)},
        "seeds": {},
    }  # fmt: skip
    bc_demos = args.init_demos + args.iterations * args.episodes_per_iteration
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            work = Path(tmp) / f"seed{seed}"
            entry: dict = {}
            dagger_policy: Path | None = None
            if not args.no_dagger:
                init = record_demos(env_id, noise, args.init_demos, seed, work / "init.h5",
                                    init_seconds(args))  # fmt: skip
                config = DaggerConfig(iterations=args.iterations,
                                      episodes_per_iteration=args.episodes_per_iteration,
                                      beta=args.beta, beta_decay=args.beta_decay,
                                      max_labels=args.max_labels,
                                      episode_seconds=args.episode_seconds,
                                      lead_seconds=args.lead_seconds,
                                      lead_share=args.lead_share,
                                      eval_episodes=args.eval_episodes,
                                      eval_seed=args.eval_seed,
                                      final_fits=args.final_fits,
                                      final_fit_epochs=args.final_fit_epochs,
                                      selection_episodes=args.selection_episodes,
                                      selection_seed=args.selection_seed,
                                      workers=2, seed=seed)  # fmt: skip
                train_config = resolve_train_config(
                    overrides=args.train_override, env_id=env_id,
                    options=TrainOptions(seed=seed, no_track=True),
                )  # fmt: skip
                result = dagger(init, work / "dagger", config, train_config)
                dagger_policy = Path(result.policy_dir)
                entry = {"dagger": [vars(r) for r in result.rows], "expert": result.expert,
                         "random": result.random}  # fmt: skip
                if result.final is not None:
                    entry["dagger_choice"] = asdict(result.final)
                if args.final_episodes:
                    entry["dagger_final"] = closed_loop(dagger_policy, args.final_episodes,
                                                        args.final_seed)  # fmt: skip
                if not args.no_bc:
                    demos = bc_demos
                    if args.max_labels is not None:  # as many demos as DAgger's labels fill
                        per_demo = labels_of(init) / args.init_demos
                        demos = max(1, round(result.rows[-1].labels / per_demo))
                    bc_data = record_demos(env_id, noise, demos, seed, work / "bc.h5")
                    entry["bc"] = bc_row(bc_data, seed, work / "bc", args.eval_episodes,
                                         args.eval_seed, args.train_override)  # fmt: skip
                    if args.final_episodes:
                        entry["bc_final"] = closed_loop(work / "bc", args.final_episodes,
                                                        args.final_seed)  # fmt: skip
            if args.bc_curve:
                demos = [int(n) for n in args.bc_curve.split(",")]
                entry["bc_curve"] = bc_curve(env_id, noise, demos, seed, work, args)
            report["seeds"][seed] = entry
            if args.keep_policies is not None:
                kept = {"dagger": dagger_policy, "bc": work / "bc" / "policy"}
                for method, policy in kept.items():
                    if policy is not None and policy.is_dir():
                        target = args.keep_policies / f"{args.task}-seed{seed}-{method}"
                        shutil.copytree(policy, target / "policy", dirs_exist_ok=True)
                aggregate = work / "dagger" / AGGREGATE_FILE
                if aggregate.is_file():  # the labels, for refits without new rollouts
                    shutil.copy2(aggregate, args.keep_policies / f"{args.task}-seed{seed}-dagger")
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(report, indent=2, default=jsonable) + "\n")
            print(f"seed {seed}: done", flush=True)
    print_table(report)
    print(f"results: {args.results}")
    return 0


def print_table(report: dict) -> None:
    table = Table(title=f"{report['task']}: DAgger against BC at about the same labels")
    for column in ("seed", "method", "labels", "survival", "on expert's starts",
                   "norm. distance", "pose", "expert survival"):  # fmt: skip
        table.add_column(column, justify="right")
    means: dict[str, list[tuple[float, float]]] = {"BC": [], "DAgger": []}
    curve = Table(title="behaviour-cloning curve (--bc-curve)")
    for column in ("seed", "method", "demos", "labels", "survival", "norm. distance",
                   "expert survival"):  # fmt: skip
        curve.add_column(column, justify="right")
    for seed, entry in report["seeds"].items():
        for row in entry.get("bc_curve", []):
            curve.add_row(str(seed), row["method"], str(row["demos"]), str(row["labels"]),
                          f"{100 * row['survival']:.0f}%", f"{row['normalized_distance']:.2f}",
                          f"{100 * row['expert_survival']:.0f}%")  # fmt: skip
    if curve.row_count:
        Console(width=160).print(curve)
    for seed, entry in report["seeds"].items():
        if "dagger" not in entry:
            continue
        last = entry["dagger"][-1]
        expert = entry["expert"]["survival_rate"]
        rows = [("DAgger", last)] if "bc" not in entry else [("BC", entry["bc"]), ("DAgger", last)]
        for method, row in rows:
            pose = row.get("pose_reward")
            pose_text = "-" if pose is None or pose != pose else f"{pose:.3f}"
            table.add_row(str(seed), method, str(row["labels"]), f"{100 * row['survival']:.0f}%",
                          f"{100 * row['survival_on_expert_starts']:.0f}%",
                          f"{row['normalized_distance']:.2f}",
                          pose_text, f"{100 * expert:.0f}%")  # fmt: skip
            means[method].append((row["survival"], row["normalized_distance"]))
    for method, values in means.items():
        if values:
            survival = sum(v[0] for v in values) / len(values)
            distance = sum(v[1] for v in values) / len(values)
            table.add_row("mean", method, "", f"{100 * survival:.0f}%", "", f"{distance:.2f}",
                          "", "", end_section=method == "DAgger")  # fmt: skip
    if table.row_count:
        Console(width=160).print(table)
    finals = [
        (seed, method, entry[key])
        for seed, entry in report["seeds"].items()
        for method, key in (("BC", "bc_final"), ("DAgger", "dagger_final"))
        if key in entry
    ]
    if finals:
        held_out = Table(title="final policies on the held-out seeds (--final-seed)")
        for column in ("seed", "method", "survival", "on expert's starts", "norm. distance",
                       "pose / expert's", "expert survival", "random survival"):  # fmt: skip
            held_out.add_column(column, justify="right")
        for seed, method, row in finals:
            pose = (row["pose_reward"] or math.nan) / (row["expert_pose_reward"] or math.nan)
            held_out.add_row(str(seed), method, f"{100 * row['survival']:.0f}%",
                             f"{100 * row['survival_on_expert_starts']:.0f}%",
                             f"{row['normalized_distance']:.2f}", f"{pose:.3f}",
                             f"{100 * row['expert_survival']:.0f}%",
                             f"{100 * row['random_survival']:.0f}%")  # fmt: skip
        Console(width=160).print(held_out)


if __name__ == "__main__":
    sys.exit(main())
