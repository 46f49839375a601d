"""``pipeline tune`` measured: a walk study ranked by walking, and trials per hour.

    .venv/bin/python benchmarks/bench_tune.py study [--trials 24] [--fine-trials 12]
        [--rollout-episodes 10] [--workers 2] [--seeds 0,1,2] [--episodes 40]
        [--eval-seed 3000] [--out DIR] [--results F.json]
    .venv/bin/python benchmarks/bench_tune.py throughput [--trials 4] [--epochs 3]
        [--results F.json]

``study``: on the quickstart's data (100 HumanoidWalk demonstrations, DART noise 0.005,
recorded once by ``bench_recipes.record_data``), a coarse-to-fine random search over
``configs/walk_space.yaml`` with the closed-loop objective (rollout seeds 900000+, which no
evaluation uses). Reports every trial's validation loss and closed-loop score, the rank
correlation of the two (Spearman, over all finished trials), the time per trial split into
training and closed-loop evaluation, then re-trains the best config, the walk recipe (what
``pipeline train`` uses for walk data without ``--config``, and the quickstart's training)
and the typed defaults with 3 training seeds each and evaluates them on held-out seeds
next to the expert and a random policy (``bench_recipes.train_and_evaluate``).

``throughput``: the same small study (``--trials`` coarse trials, ``--epochs`` epochs,
validation-loss objective) with 1 and then 2 trial workers in the same run; trials per hour
and their ratio. Prints tables and writes ``benchmarks/results/bench_tune*.json``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recipes import baselines, record_data, train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SPACE = ROOT / "configs" / "walk_space.yaml"
WALK_MLP = ROOT / "configs" / "walk_mlp.yaml"


def machine() -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
                       f"Python {platform.python_version()}"}  # fmt: skip


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def run_study(args: argparse.Namespace) -> dict:
    from pipeline.workflows.tune.study import TuneRequest, run_tune

    data = record_data("walk")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-tune-")) / "study"
    request = TuneRequest(data=data, space=SPACE, out=out, trials=args.trials,
                          fine_trials=args.fine_trials, objective="closed_loop",
                          rollout_episodes=args.rollout_episodes, base_config=WALK_MLP,
                          workers=args.workers, resume=(out / "study.db").exists(),
                          tracking_uri=f"sqlite:///{out.parent / 'mlflow.db'}")  # fmt: skip
    start = time.perf_counter()
    result = run_tune(request, on_trial=lambda r: print(
        f"trial {r.number} ({r.stage}): val {r.val_loss:.4f} closed-loop {r.value:.4f} "
        f"train {r.train_s:.0f}s eval {r.eval_s:.0f}s", flush=True))  # fmt: skip
    study_s = time.perf_counter() - start
    rows = result.trials
    val = [r["val_loss"] for r in rows]
    closed = [r["value"] for r in rows]
    by_val = min(rows, key=lambda r: r["val_loss"])
    report = {**machine(), "data": str(data), "space": str(SPACE), "study_dir": str(out),
              "study_s": study_s, "workers": args.workers, "trials": rows,
              "stages": result.stages, "best": result.best,
              "best_by_val_loss": by_val,
              # Positive: a lower validation loss goes with a better walk.
              "spearman_neg_val_loss_vs_closed_loop": spearman([-v for v in val], closed),
              "mean_train_s": sum(r["train_s"] for r in rows) / len(rows),
              "mean_eval_s": sum(r["eval_s"] for r in rows) / len(rows)}  # fmt: skip
    eval_seeds = list(range(args.eval_seed, args.eval_seed + args.episodes))
    base = baselines("walk", eval_seeds)
    from pipeline.rollout.episodes import summarize

    report.update(
        episodes=args.episodes,
        eval_seeds=[eval_seeds[0], eval_seeds[-1]],
        expert=summarize(base["expert"]),
        random=summarize(base["random"]),
    )
    # `pipeline train` without --config uses the walk recipe for walk data, as the quickstart
    # does: the last two rows must agree, bit for bit (a check that they still do).
    configs = {"tuned (best closed-loop trial)": ["--config", result.best_config],
               "configs/walk_mlp.yaml (the walk recipe)": ["--config", str(WALK_MLP)],
               "pipeline train default (quickstart)": []}  # fmt: skip
    report["retrained"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, recipe in configs.items():
            report["retrained"][name] = {"args": recipe, "seeds": [
                train_and_evaluate(recipe, data, s, None, args.episodes, args.eval_seed, base,
                                   Path(tmp)) for s in args.seeds]}  # fmt: skip
            print(f"{name}: done", flush=True)
            write(report, args.results)
    return report


def run_throughput(args: argparse.Namespace) -> dict:
    from pipeline.workflows.tune.study import TuneRequest, run_tune

    data = record_data("walk")
    report = {**machine(), "trials": args.trials, "epochs": args.epochs, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            out = Path(tmp) / f"w{workers}"
            request = TuneRequest(data=data, space=SPACE, out=out, trials=args.trials,
                                  base_config=WALK_MLP, workers=workers,
                                  overrides=[f"training.epochs={args.epochs}"],
                                  tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}")  # fmt: skip
            start = time.perf_counter()
            result = run_tune(request)
            wall = time.perf_counter() - start
            report["runs"][workers] = {
                "wall_s": wall,
                "trials_per_hour": 3600 * len(result.trials) / wall,
                "mean_train_s": sum(r["train_s"] for r in result.trials) / len(result.trials),
            }
            print(f"{workers} worker(s): {wall:.0f} s", flush=True)
    report["ratio_2_vs_1"] = (report["runs"][2]["trials_per_hour"]
                              / report["runs"][1]["trials_per_hour"])  # fmt: skip
    write(report, args.results)
    return report


def write(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def print_study(report: dict) -> None:
    console = Console(width=200)
    trials = Table(title=f"walk study: {len(report['trials'])} closed-loop trials, "
                   f"{report['study_s'] / 60:.0f} min with {report['workers']} workers; "
                   f"Spearman(-val loss, closed loop) = "
                   f"{report['spearman_neg_val_loss_vs_closed_loop']:.2f}")  # fmt: skip
    for column in ("trial", "stage", "params", "val loss", "closed loop", "train s", "eval s"):
        trials.add_column(column, justify="right")
    for r in sorted(report["trials"], key=lambda r: -r["value"])[:10]:
        params = " ".join(f"{k.split('.')[-1]}={v}" for k, v in r["params"].items())
        trials.add_row(
            str(r["number"]),
            r["stage"],
            params,
            f"{r['val_loss']:.4f}",
            f"{r['value']:.4f}",
            f"{r['train_s']:.0f}",
            f"{r['eval_s']:.0f}",
        )
    console.print(trials)
    expert = report["expert"]
    table = Table(title=f"re-trained, 3 seeds, held-out seeds {report['eval_seeds'][0]}-"
                  f"{report['eval_seeds'][1]}: expert {100 * expert['survival_rate']:.0f}% "
                  f"({expert['distance']['mean']:.1f} m)")  # fmt: skip
    for column in ("config", "survival per seed", "mean", "norm. distance per seed", "mean"):
        table.add_column(column, justify="right")
    for name, entry in report["retrained"].items():
        rows = entry["seeds"]
        survival = [r["survival_rate"] for r in rows]
        distance = [r["normalized_distance"] for r in rows]
        table.add_row(
            name,
            " / ".join(f"{100 * v:.0f}%" for v in survival),
            f"{100 * sum(survival) / len(rows):.0f}%",
            " / ".join(f"{v:.2f}" for v in distance),
            f"{sum(distance) / len(rows):.2f}",
        )
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    study = sub.add_parser("study")
    study.add_argument("--trials", type=int, default=24)
    study.add_argument("--fine-trials", type=int, default=12)
    study.add_argument("--rollout-episodes", type=int, default=10)
    study.add_argument("--workers", type=int, default=2)
    study.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    study.add_argument("--episodes", type=int, default=40)
    study.add_argument("--eval-seed", type=int, default=3000)
    study.add_argument("--out", type=Path, help="study directory (resumed if it holds one)")
    study.add_argument("--results", type=Path, default=RESULTS / "bench_tune.json")
    throughput = sub.add_parser("throughput")
    throughput.add_argument("--trials", type=int, default=4)
    throughput.add_argument("--epochs", type=int, default=3)
    throughput.add_argument("--results", type=Path, default=RESULTS / "bench_tune_throughput.json")
    args = parser.parse_args()
    if args.mode == "study":
        report = run_study(args)
        write(report, args.results)
        print_study(report)
    else:
        report = run_throughput(args)
        console = Console()
        for workers, run in report["runs"].items():
            console.print(
                f"{workers} worker(s): {run['trials_per_hour']:.1f} trials/hour "
                f"(train {run['mean_train_s']:.0f} s per trial)"
            )
        console.print(f"2 workers / 1 worker: {report['ratio_2_vs_1']:.2f}x")
    print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
