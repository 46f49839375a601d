"""Is the expert mirror-symmetric? What mirror augmentation assumes, measured.

    .venv/bin/python benchmarks/bench_mirror_consistency.py [--episodes 20] [--quick]

Mirror augmentation (``data.augment.mirror_prob``) trains on ``(M_obs s, M_act a)`` beside
``(s, a)``: it assumes the expert would answer the mirrored state with the mirrored action,
``expert(M_obs s) = M_act expert(s)``. For each task this records ``--episodes`` expert
episodes (seed 0; the walk from random start phases), and on every visited state compares
the two sides per action dimension: the mean squared difference over the variance of the
expert's action in that dimension (0: symmetric; 2: as unrelated as two random draws of
the action; the mean of the dimensions is the table's last row). Prints a table and writes
``benchmarks/results/bench_mirror_consistency.json``.
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

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_mirror_consistency.json"
TASKS = {"walk": "sim/HumanoidWalk-v0", "run": "sim/HumanoidRun-v0"}


def expert_states(env_id: str, episodes: int, tmp: Path) -> np.ndarray:
    """Every state the expert visited in ``episodes`` recorded episodes (falls kept)."""
    from datasets import open_dataset
    from pipeline.stages.record import RecordConfig, record

    path = tmp / f"{env_id.split('/')[1]}.h5"
    record(RecordConfig(out=path, env_id=env_id, episodes=episodes, workers=2,
                        keep_failed=True))  # fmt: skip
    with open_dataset(path) as ds:
        return np.concatenate([ds.episode(i).observations[:-1] for i in ds.episode_ids()])


def inconsistency(env_id: str, states: np.ndarray) -> dict[str, float]:
    """Per action name: mean squared (M_act expert(s) - expert(M_obs s)) / var(action)."""
    import sim
    from sim.mirror import mirror_spec

    spec = mirror_spec(env_id)
    expert = sim.load_expert(sim.EXPERT_FOR_ENV[env_id])
    states = states.astype(np.float64)
    actions = expert.act(states)
    gap = spec.mirror_act(actions) - expert.act(spec.mirror_obs(states.copy()))
    ratio = (gap**2).mean(axis=0) / actions.var(axis=0)
    return dict(zip(spec.act_names, map(float, ratio), strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="2 episodes per task")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    episodes = 2 if args.quick else args.episodes
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "episodes": episodes, "tasks": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for task, env_id in TASKS.items():
            states = expert_states(env_id, episodes, Path(tmp))
            per_dim = inconsistency(env_id, states)
            report["tasks"][task] = {"states": len(states), "per_action": per_dim,
                                     "mean": float(np.mean(list(per_dim.values())))}  # fmt: skip
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    for task, entry in report["tasks"].items():
        table = Table(title=f"{TASKS[task]}: mirror inconsistency of the expert over "
                      f"{entry['states']} states (0 = symmetric, 2 = unrelated)")  # fmt: skip
        table.add_column("action")
        table.add_column("inconsistency", justify="right")
        for name, value in entry["per_action"].items():
            table.add_row(name, f"{value:.2f}")
        table.add_row("mean", f"{entry['mean']:.2f}", end_section=True)
        Console(width=100).print(table)
    print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
