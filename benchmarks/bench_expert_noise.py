"""How reproducible is the walk expert's own survival? The expert with tiny Gaussian noise
on its executed actions, on the same held-out seeds as without: which starts it survives.

    .venv/bin/python benchmarks/bench_expert_noise.py [--episodes 300] [--seed 2000]
        [--sigmas 0,0.001,0.005] [--draws K] [--evaluation EVAL.json ...]
        [--earlier RESULTS.json ...] [--quick] [--results F]

For each noise level (in expert action scales, as DART's ``--noise``; the noise of
``pipeline evaluate --action-noise``, drawn from each episode's seed) the expert runs the
walk from random start phases on seeds ``seed .. seed + episodes - 1`` (the seeds of
``pipeline evaluate --seed``). Reported: its survival, and its survival on the starts the
noiseless expert survives, the figure the issue's "97% on the expert's starts" bar asks of
a learner, and on the expert's *robust* starts: those it survives at every listed noise
level, so that a learner's falls can be told apart into starts where the expert itself is a
coin flip and starts it reliably walks from. With ``--draws K`` each noise level runs K
independent draws of the noise (the first is ``pipeline evaluate --action-noise``'s); the
robust starts come from the first draws alone, so the others say how often the expert
itself falls on starts so defined. With ``--earlier`` (a results file of this benchmark on
the same seeds, repeatable) its rows are scored against today's noiseless expert: a
simulator or machine change at the level of rounding is a perturbation too. With
``--evaluation`` (a ``pipeline evaluate --json`` report on the same seeds, with or without
``--action-noise``; repeatable) each learner's figures are printed beside it. Writes, with
the seeds each policy fell on, ``benchmarks/results/bench_expert_noise.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import sim
from pipeline.rollout.action_noise import EVALUATION_STREAM, ActionNoise, NoisyPolicy
from pipeline.rollout.policies import ExpertPolicy
from pipeline.rollout.workers import EpisodeTask, run_episodes

WALK = "sim/HumanoidWalk-v0"
RESULTS = Path(__file__).parent / "results" / "bench_expert_noise.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2000)
    parser.add_argument("--sigmas", default="0,0.001,0.005")
    parser.add_argument("--draws", type=int, default=1)
    parser.add_argument("--evaluation", type=Path, action="append", default=[])
    parser.add_argument("--earlier", type=Path, action="append", default=[])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="20 episodes")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    episodes = 20 if args.quick else args.episodes
    sigmas = [float(s) for s in args.sigmas.split(",")]
    if sigmas[0] != 0:
        sigmas.insert(0, 0.0)  # the noiseless expert defines "the expert's starts"
    expert = sim.load_expert(sim.EXPERT_FOR_ENV[WALK])
    clean = ExpertPolicy(expert)
    tasks = [EpisodeTask(args.seed + i) for i in range(episodes)]
    learners = {path: json.loads(path.read_text()) for path in args.evaluation}
    for path, report in learners.items():  # checked before the expert's long runs
        seeds = {e["seed"] for e in report["episodes"]["learner"]}
        if missing := [t.seed for t in tasks if t.seed not in seeds]:
            parser.error(f"--evaluation {path}: no episode of seed {missing[0]} (evaluate with "
                         f"--seed {args.seed} --episodes {episodes})")  # fmt: skip
    earlier = {path: json.loads(path.read_text()) for path in args.earlier}
    for path, results in earlier.items():
        if (results["seed"], results["episodes"]) != (args.seed, episodes):
            parser.error(f"--earlier {path}: seeds {results['seed']}.. x {results['episodes']},"
                         f" not {args.seed}.. x {episodes}")  # fmt: skip
    fell: dict[tuple[float, int], np.ndarray] = {}
    for sigma in sigmas:
        for draw in range(args.draws if sigma else 1):
            # The noise of ``pipeline evaluate --action-noise`` (draw 0), seeded by each
            # episode's seed; further draws take streams of their own.
            noise = ActionNoise(sigma, expert.action_scale)
            policy = NoisyPolicy(clean, noise, EVALUATION_STREAM + draw) if sigma else clean
            results = run_episodes(WALK, {"start_phase": "random"}, policy, tasks, args.workers)
            fell[sigma, draw] = np.array([r.fell for r in results])
    starts = ~fell[0.0, 0]
    robust = ~np.any(np.stack([f for (_, draw), f in fell.items() if draw == 0]), axis=0)

    def row(policy: str, fallen: np.ndarray) -> dict[str, object]:
        on_robust = float(1 - fallen[robust].mean()) if robust.any() else None
        return {
            "policy": policy,
            "survival": float(1 - fallen.mean()),
            "on_expert_starts": float(1 - fallen[starts].mean()),
            "on_robust_starts": on_robust,
            "fell_seeds": [t.seed for t, f in zip(tasks, fallen, strict=True) if f],
        }

    rows = [
        row(f"expert, noise {sigma:g}" + (f", draw {draw}" if draw else ""), fallen)
        for (sigma, draw), fallen in fell.items()
    ]
    for path, results in earlier.items():
        for entry in results["rows"]:
            fallen_seeds = set(entry["fell_seeds"])
            fallen = np.array([t.seed in fallen_seeds for t in tasks])
            rows.append(row(f"{entry['policy']} ({path.name})", fallen))
    for report in learners.values():
        by_seed = {e["seed"]: e["fell"] for e in report["episodes"]["learner"]}
        learner = np.array([by_seed[t.seed] for t in tasks])
        noise = report.get("action_noise", 0.0)
        label = f"learner ({report['policy']})" + (f", noise {noise:g}" if noise else "")
        rows.append(row(label, learner))
    table = Table(title=f"{WALK}: seeds {args.seed}-{args.seed + episodes - 1}, "
                        f"{int(starts.sum())} starts the noiseless expert survives, "
                        f"{int(robust.sum())} it survives at every noise level")  # fmt: skip
    for column in ("policy", "survival", "on the expert's starts", "on its robust starts"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for entry in rows:
        on_robust = entry["on_robust_starts"]
        table.add_row(entry["policy"], f"{entry['survival']:.1%}",
                      f"{entry['on_expert_starts']:.1%}",
                      "-" if on_robust is None else f"{on_robust:.1%}")  # fmt: skip
    Console().print(table)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "episodes": episodes, "seed": args.seed, "expert_starts": int(starts.sum()),
        "robust_starts": int(robust.sum()), "sigmas": sigmas, "draws": args.draws,
        "earlier": [str(path) for path in args.earlier], "rows": rows,
    }, indent=2))  # fmt: skip
    print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
