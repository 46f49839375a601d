"""DAgger's final policy against refits of its own aggregate with a longer or larger fit.

    .venv/bin/python benchmarks/bench_dagger_refit.py --kept DIR [--task walk] [--seeds 0,1,2]
        [--variant NAME=KEY=VALUE,KEY=VALUE ...] [--episodes 300] [--seed 2000]
        [--robust benchmarks/results/bench_expert_noise_robust.json] [--keep-policies DIR]
        [--fits 1] [--selection-episodes 0] [--selection-seed 3000] [--quick] [--results F]

``bench_dagger.py --keep-policies DIR`` leaves each training seed's final policy and its
aggregate file (the expert's labels on every state the mixture visited) in
``DIR/<task>-seedS-dagger``. For each training seed S this fits each ``--variant`` from
scratch on that aggregate (``pipeline train`` in a subprocess, as a user runs it: the env's
recipe, an ensemble of 5 and training seed S, plus the variant's overrides) and evaluates
DAgger's own final policy and every refit with ``pipeline evaluate`` on the same held-out
seeds, with the expert and a random policy on those seeds (run once). The labels are the
ones DAgger gathered: a refit changes only how well the policy fits them. Reports survival,
survival on the expert's starts and on its robust starts (``--robust``: those the expert
survived at every noise level of a ``bench_expert_noise.py`` run on the same seeds),
normalized distance, pose reward against the expert's, and the action error on the other
training seeds' aggregates (DAgger-distribution states the policy never trained on; squared
error per action dimension over that file's action variance, averaged; with one seed, its
own aggregate). ``--keep-policies DIR`` copies each refit to
``DIR/<task>-seedS-<variant>/policy``.

``--fits K`` fits each variant K times, with training seeds S, S+100, ... (the same labels,
another draw of the fit). ``--selection-episodes M`` also runs every policy, DAgger's own
included, on M selection seeds from ``--selection-seed`` (disjoint from the held-out ones)
and adds a row per training seed for the policy a user would keep: the one with the best
selection survival, then distance, scored on the held-out seeds like the others. Prints a
table and writes ``benchmarks/results/bench_dagger_refit.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_dagger_refit.json"
PIPELINE = Path(sys.executable).parent / "pipeline"
DAGGER = "dagger (as it ended)"
SELECTED = "selected"
"""The candidate with the best survival (then distance) on the selection seeds."""
BASE_OVERRIDES = ["model.ensemble=5"]
"""The walk DAgger recipe's learner (bench_dagger.py ``--train-override model.ensemble=5``)."""


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition("=")
    if not name or not overrides:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected NAME=KEY=VALUE,...")
    return name, [o for o in overrides.split(",") if o]


def run(command: list[str], log: Path) -> None:
    """A pipeline command as a user runs it; its output kept in ``log``."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}); see {log}")


def evaluate(policy: Path, episodes: int, seed: int, out: Path, compare: bool) -> dict:
    from pipeline.stages.evaluate import EVALUATION_FILE

    out.mkdir(parents=True)
    report = out / EVALUATION_FILE
    run([str(PIPELINE), "evaluate", "--policy", str(policy), "--episodes", str(episodes),
         "--seed", str(seed), "--workers", "2", "--no-track", "--out", str(out / "eval"),
         "--json", str(report), "--compare-expert" if compare else "--no-compare-expert"],
        out / "evaluate.log")  # fmt: skip
    return json.loads(report.read_text())


def selection_score(policy: Path, args: argparse.Namespace, out: Path) -> dict:
    """Survival and mean distance on the selection seeds (what a user may choose by)."""
    from pipeline.rollout.scores import mean_of

    summary = evaluate(policy, args.selection_episodes, args.selection_seed, out,
                       compare=False)["summary"]["learner"]  # fmt: skip
    return {"selection_survival": summary["survival_rate"],
            "selection_distance": mean_of(summary, "distance")}  # fmt: skip


def selected(rows: dict[str, dict]) -> dict:
    """The candidate with the best selection survival, then distance, named: the order of
    ``pipeline.rollout.closed_loop_judge.score_key`` (on common seeds, raw distance orders as the
    expert-normalized one does), as ``pipeline dagger --final-fits`` chooses."""
    name = max(rows, key=lambda n: (rows[n]["selection_survival"], rows[n]["selection_distance"]))
    return {**rows[name], "selected_from": name}


def robust_starts(path: Path, evaluated: set[int]) -> set[int]:
    """The evaluated seeds the expert survived at every noise level of a
    bench_expert_noise.py run (which must have run them all)."""
    report = json.loads(path.read_text())
    seeds = set(range(report["seed"], report["seed"] + report["episodes"]))
    if not evaluated <= seeds:
        raise ValueError(f"--robust {path}: ran seeds {min(seeds)}-{max(seeds)}, not all the "
                         f"evaluated {min(evaluated)}-{max(evaluated)}")  # fmt: skip
    for row in report["rows"]:
        if row["policy"].startswith("expert"):
            seeds -= set(row["fell_seeds"])
    return seeds & evaluated


def labelled_states(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(observations, expert actions) of every step of a DAgger aggregate."""
    from datasets import open_dataset

    with open_dataset(path) as ds:
        episodes = [ds.episode(info.id) for info in ds.episode_infos()]
        obs = np.concatenate([e.observations[: len(e.actions)] for e in episodes])
        act = np.concatenate([e.actions for e in episodes])
    return obs.astype(np.float32), act


def action_error(policy: Path, labelled: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean squared action error over each file's per-dimension action variance."""
    from models import load_policy

    model = load_policy(policy).model
    errors = []
    for obs, act in labelled:
        predicted = np.asarray(model.predict(obs, batch_size=4096, verbose=0))
        errors.append(float(np.mean((predicted - act) ** 2 / (act.var(axis=0) + 1e-12))))
    return float(np.mean(errors))


def score(report: dict, baselines: dict, robust: set[int] | None) -> dict:
    from pipeline.rollout.scores import mean_of, normalized_scores
    from pipeline.stages.evaluate.request import EvaluateReport

    learner = EvaluateReport.from_dict(report).results["learner"]
    scores = normalized_scores(learner, baselines["expert"], baselines["random"])
    fell = {r.seed for r in learner if r.fell}
    row = {
        "survival": 1 - len(fell) / len(learner),
        "on_expert_starts": scores["survival_on_expert_surviving_starts"],
        "normalized_distance": scores["normalized_distance"],
        "pose_vs_expert": mean_of(report["summary"]["learner"], "pose_reward")
        / mean_of(baselines["expert_summary"], "pose_reward"),
        "fell_seeds": sorted(fell),
    }
    if robust is not None:
        row["on_robust_starts"] = 1 - len(fell & robust) / len(robust)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kept", type=Path, required=True)
    parser.add_argument("--task", default="walk")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variant", type=parse_variant, action="append", default=[])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2000)
    parser.add_argument("--robust", type=Path, default=None)
    parser.add_argument("--keep-policies", type=Path, default=None)
    parser.add_argument("--fits", type=int, default=1, help="fits per variant (seeds S+100k)")
    parser.add_argument("--selection-episodes", type=int, default=0)
    parser.add_argument("--selection-seed", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="1 seed, 10 episodes, 2 epochs")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if args.quick else None]
    if args.quick:
        args.episodes = 10
        args.selection_episodes = min(args.selection_episodes, 5)
    if args.fits < 1 or args.selection_episodes < 0:
        parser.error("--fits must be at least 1 and --selection-episodes at least 0")
    held_out = range(args.seed, args.seed + args.episodes)
    choosing = range(args.selection_seed, args.selection_seed + args.selection_episodes)
    if set(held_out) & set(choosing):
        parser.error(f"--selection-seed {args.selection_seed}: the selection seeds overlap "
                     f"the held-out seeds {args.seed}-{held_out[-1]}")  # fmt: skip
    variants = args.variant or [("epochs80", ["training.epochs=80"])]
    if args.quick:
        variants = [(name, [*o, "training.epochs=2"]) for name, o in variants]
    from pipeline.algorithms.dagger import AGGREGATE_FILE as AGGREGATE

    kept = {s: args.kept / f"{args.task}-seed{s}-dagger" for s in seeds}
    for where in kept.values():
        for needed in (where / "policy", where / AGGREGATE):
            if not needed.exists():
                parser.error(f"--kept {args.kept}: no {needed} (bench_dagger.py --keep-policies)")
    robust = None
    if args.robust is not None:
        try:
            robust = robust_starts(args.robust, set(range(args.seed, args.seed + args.episodes)))
        except ValueError as error:
            parser.error(str(error))
    report: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
                    "args": {k: str(v) if isinstance(v, Path) else v
                             for k, v in vars(args).items()},
                    "variants": dict(variants), "seeds": {}}  # fmt: skip
    from pipeline.stages.evaluate.request import EvaluateReport

    labels = {seed: labelled_states(where / AGGREGATE) for seed, where in kept.items()}
    baselines: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for seed in seeds:
            others = [labels[s] for s in kept if s != seed] or [labels[seed]]
            rows: dict[str, dict] = {}
            policies = {DAGGER: kept[seed] / "policy"}
            fits = [(f"{name}-fit{k}" if args.fits > 1 else name, seed + 100 * k, overrides)
                    for name, overrides in variants for k in range(args.fits)]  # fmt: skip
            for name, fit_seed, overrides in fits:
                out = work / f"seed{seed}-{name}"
                run([str(PIPELINE), "train", "--data", str(kept[seed] / AGGREGATE), "--out",
                     str(out), "--no-track", "--seed", str(fit_seed), *BASE_OVERRIDES,
                     *overrides], work / f"seed{seed}-{name}.log")  # fmt: skip
                policies[name] = out / "policy"
                if args.keep_policies is not None:
                    target = args.keep_policies / f"{args.task}-seed{seed}-{name}" / "policy"
                    shutil.copytree(out / "policy", target, dirs_exist_ok=True)
            for index, (name, policy) in enumerate(policies.items()):
                out = work / f"eval-seed{seed}-{index}"
                evaluation = evaluate(policy, args.episodes, args.seed, out, compare=not baselines)
                if not baselines:
                    results = EvaluateReport.from_dict(evaluation).results
                    baselines = {"expert": results["expert"], "random": results["random"],
                                 "expert_summary": evaluation["summary"]["expert"]}  # fmt: skip
                    report["expert_survival"] = evaluation["summary"]["expert"]["survival_rate"]
                    report["random_survival"] = evaluation["summary"]["random"]["survival_rate"]
                rows[name] = {
                    **score(evaluation, baselines, robust),
                    "action_error_other_aggregates": action_error(policy, others),
                }
                if args.selection_episodes:
                    rows[name].update(selection_score(policy, args, out / "selection"))
                print(f"seed {seed} {name}: {rows[name]['survival']:.1%}", flush=True)
            if args.selection_episodes:
                rows[SELECTED] = selected(rows)
            report["seeds"][seed] = rows
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report, robust is not None, args.selection_episodes > 0)
    print(f"results: {args.results}")
    return 0


def print_table(report: dict, with_robust: bool, with_selection: bool) -> None:
    table = Table(title=f"DAgger's aggregate refitted (expert {report['expert_survival']:.1%}, "
                        f"random {report['random_survival']:.1%})")  # fmt: skip
    columns = ["seed", "policy", "survival", "on expert's starts"]
    columns += ["on robust starts"] if with_robust else []
    columns += ["norm. distance", "pose / expert's", "action error, other aggregates"]
    columns += ["survival, selection seeds"] if with_selection else []
    for column in columns:
        table.add_column(column, justify="right")
    keys = ["survival", "on_expert_starts"] + (["on_robust_starts"] if with_robust else [])
    by_policy: dict[str, list[dict]] = {}
    for seed, rows in report["seeds"].items():
        for name, row in rows.items():
            by_policy.setdefault(name, []).append(row)
            label = f"{name}: {row['selected_from']}" if "selected_from" in row else name
            table.add_row(str(seed), label, *cells(row, keys, with_selection))
    for name, rows in by_policy.items():
        mean = {k: float(np.mean([r[k] for r in rows]))
                for k in rows[0] if k not in ("fell_seeds", "selected_from")}  # fmt: skip
        table.add_row("mean", name, *cells(mean, keys, with_selection))
    Console().print(table)


def cells(row: dict, keys: list[str], with_selection: bool) -> list[str]:
    out = [f"{row[k]:.1%}" for k in keys]
    out += [f"{row['normalized_distance']:.2f}", f"{row['pose_vs_expert']:.3f}"]
    error = row["action_error_other_aggregates"]
    out.append("nan" if math.isnan(error) else f"{error:.5f}")
    return [*out, f"{row['selection_survival']:.1%}"] if with_selection else out


if __name__ == "__main__":
    sys.exit(main())
