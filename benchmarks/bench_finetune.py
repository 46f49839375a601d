"""Reward fine-tuning against its teacher: several training seeds of ``pipeline finetune``
from one starting policy, then the expert, the starting policy, every fine-tuned policy and
a random policy on the same held-out seeds.

    .venv/bin/python benchmarks/bench_finetune.py --start POLICY --out DIR [--seeds 0,1,2]
        [--workers 2] [--backend ray --ray-address A] [--episodes 300] [--eval-seed 8100]
        [--results F] [key=value ...]

Each training seed runs in ``DIR/seedS`` (``pipeline finetune --seed S`` with the
overrides): a finished run is kept, an interrupted one is resumed, so the benchmark can
span sessions. Then ``pipeline compare`` evaluates on seeds ``eval-seed ..
eval-seed + episodes - 1``, which no training episode (seeds from 10^9) or selection
(``selection.seed``, 7000 by default) used. Prints per policy: survival with its 95%
interval, survival on the starts the expert survives, pose reward and distance relative
to the expert's, and per training seed the environment steps, wall time and rollout speed
against the bare simulator's; writes ``benchmarks/results/bench_finetune_<env>.json`` and
beside it the seeds' selection curves (``.png``).
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


def train(args: argparse.Namespace, seed: int) -> dict:
    """Fine-tune (or resume, or reuse) training seed ``seed``; returns its finetune.json."""
    from pipeline.algorithms.finetune import (
        FINETUNE_FILE,
        REQUEST_FILE,
        FinetuneRequest,
        finetune,
    )
    from pipeline.algorithms.finetune_config import resolve_finetune_config
    from pipeline.rollout.cluster import cluster_session, parse_backend
    from pipeline.rollout.policy_source import local_policy_env

    out = args.out / f"seed{seed}"
    if (out / FINETUNE_FILE).is_file():
        return json.loads((out / FINETUNE_FILE).read_text())
    env_id = local_policy_env(args.start)
    config = resolve_finetune_config(None, [*args.overrides, f"seed={seed}"], env_id=env_id)
    backend = parse_backend(args.backend, args.ray_address)
    request = FinetuneRequest(policy=args.start, out=out, config=config, workers=args.workers,
                              backend=backend, resume=(out / REQUEST_FILE).is_file())  # fmt: skip

    def progress(row: object) -> None:
        print(f"seed {seed}: {row}", flush=True)

    with cluster_session(backend):
        finetune(request, on_selection=progress)
    return json.loads((out / FINETUNE_FILE).read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", required=True, help="the policy to fine-tune")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default="local")
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--eval-seed", type=int, default=8100)
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="fine-tuning config key=value")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    from pipeline.rollout.policy_source import local_policy_env
    from pipeline.stages.compare import CompareRequest, compare

    env_id = local_policy_env(args.start) or "unknown"
    name = env_id.rsplit("/", 1)[-1].removesuffix("-v0")
    results = args.results or ROOT / "benchmarks" / "results" / f"bench_finetune_{name}.json"
    runs = {seed: train(args, seed) for seed in seeds}
    groups = {"start": [args.start], "finetuned": [str(args.out / f"seed{s}" / "policy")
                                                  for s in seeds]}  # fmt: skip
    compared = compare(CompareRequest(groups=groups, episodes=args.episodes,
                                      seed=args.eval_seed, workers=args.workers))  # fmt: skip
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "args": {k: str(v) for k, v in vars(args).items()},
        "env_id": env_id,
        "seeds": compared.seeds[:1] + compared.seeds[-1:],
        "expert": _summary(compared.expert),
        "random": _summary(compared.random),
        "policies": compared.policies,
        "groups": compared.groups,
        "training": {str(seed): _cost(run) for seed, run in runs.items()},
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2, default=str) + "\n")
    curves = results.with_suffix(".png")
    plot_curves(runs, curves)
    print_tables(report)
    print(f"curves: {curves}")
    print(f"results: {results}")
    return 0


def plot_curves(runs: dict[int, dict], path: Path) -> None:
    """Every seed's selection survival and pose reward against environment steps, with the
    starting policy and the expert (the same selection seeds in every run) as lines."""
    from pipeline.algorithms.finetune import SelectionRow
    from pipeline.reports.curve_plots import plot_finetune_curve

    first = next(iter(runs.values()))
    selections = {f"seed {seed}": [SelectionRow(**row) for row in run["selections"]]
                  for seed, run in runs.items()}  # fmt: skip
    plot_finetune_curve(selections, first["start"], first["expert"], path)


def _summary(summary: dict) -> dict:
    keep = ("survival_rate", "survival_ci95", "pose_reward", "distance", "episodes")
    return {k: summary[k] for k in keep if k in summary}


def _cost(run: dict) -> dict:
    """Steps, time and rollout speed of one training seed, and its best selection."""
    rows = [r for r in run["rows"] if r.get("steps_per_s")]
    speed = sum(r["steps_per_s"] for r in rows) / max(len(rows), 1)
    bare = [r["bare_steps_per_s"] for r in rows if r.get("bare_steps_per_s")]
    bare_speed = sum(bare) / len(bare) if bare else float("nan")
    # Rows written before the expert labels were timed apart have no rollout speed.
    rollout = [r["rollout_steps_per_s"] for r in rows if r.get("rollout_steps_per_s")]
    rollout_speed = sum(rollout) / len(rollout) if rollout else float("nan")
    published = [s for s in run["selections"] if s["published"]][-1]
    return {
        "env_steps": run["env_steps"],
        "updates": run["updates"],
        "wall_s": run["wall_s"],
        "steps_per_s_per_worker": speed,
        "bare_steps_per_s": bare_speed,
        "speed_ratio": speed / bare_speed if bare else float("nan"),
        "rollout_steps_per_s_per_worker": rollout_speed,
        "rollout_speed_ratio": rollout_speed / bare_speed if bare else float("nan"),
        "published_update": published["update"],
        "published_selection_survival": published["survival"],
        "start_selection_survival": run["start"].get("survival"),
        "expert_selection_survival": run["expert"].get("survival"),
    }


def print_tables(report: dict) -> None:
    expert = report["expert"]
    expert_pose = expert["pose_reward"]["mean"]
    expert_distance = expert["distance"]["mean"]
    first, last = report["seeds"]
    table = Table(title=f"{report['env_id']}: held-out seeds {first}-{last}")
    for column in ("policy", "survival [95% CI]", "on expert's starts", "pose / expert's",
                   "distance / expert's"):  # fmt: skip
        table.add_column(column, justify="right")

    def row(name: str, survival: float, ci: list, on_expert: str, pose: float, dist: float):
        table.add_row(name, f"{survival:.1%} [{ci[0]:.0%}, {ci[1]:.0%}]", on_expert,
                      f"{pose / expert_pose:.3f}", f"{dist / expert_distance:.3f}")  # fmt: skip

    row("expert", expert["survival_rate"], expert["survival_ci95"], "100%", expert_pose,
        expert_distance)  # fmt: skip
    for policy in report["policies"]:
        name = "start" if policy["group"] == "start" else Path(policy["policy"]).parent.name
        row(name, policy["survival"], policy["survival_ci95"],
            f"{policy['survival_on_expert_starts']:.1%}", policy["pose_reward"],
            _distance(policy, report))  # fmt: skip
    random = report["random"]
    row("random", random["survival_rate"], random["survival_ci95"], "-",
        random["pose_reward"]["mean"], random["distance"]["mean"])  # fmt: skip
    Console(width=160).print(table)
    cost = Table(title="training cost per seed")
    for column in ("seed", "env steps", "wall min", "steps/s per worker",
                   "bare simulator steps/s", "ratio with labels", "rollout ratio",
                   "published update"):  # fmt: skip
        cost.add_column(column, justify="right")
    for seed, c in report["training"].items():
        cost.add_row(seed, f"{c['env_steps']:,}", f"{c['wall_s'] / 60:.1f}",
                     f"{c['steps_per_s_per_worker']:.0f}", f"{c['bare_steps_per_s']:.0f}",
                     f"{c['speed_ratio']:.2f}", f"{c.get('rollout_speed_ratio', float('nan')):.2f}",
                     str(c["published_update"]))  # fmt: skip
    Console(width=160).print(cost)


def _distance(policy: dict, report: dict) -> float:
    """A policy's mean distance from its normalized distance (expert = 1, random = 0)."""
    expert = report["expert"]["distance"]["mean"]
    random = report["random"]["distance"]["mean"]
    return random + policy["normalized_distance"] * (expert - random)


if __name__ == "__main__":
    sys.exit(main())
