"""The DeepMimic skills: each shipped expert, and behaviour cloning from its demonstrations.

    .venv/bin/python benchmarks/bench_skills.py [--quick] [--skills walk,backflip,jump]
    .venv/bin/python benchmarks/bench_skills.py --skills spinkick --no-bc

- Experts: each skill's expert on 40 held-out seeds (1000-1039) from random start phases,
  the skill's episode length: survival (Wilson 95% interval), pose reward, episode length,
  steps per second per worker, distance where the skill travels. A random policy on the
  same seeds. ``spinkick`` (not registered; see ``sim/skills.py``) runs through the same
  environment class with its clip and checkpoint, to show why it is left out.
- Behaviour cloning: 25 expert demonstrations (seed 0, random start phases; 6 more for
  validation), the skill's ``pipeline train`` recipe, 3 training seeds, each evaluated on
  the same 40 seeds: survival and pose reward against the expert's, expert-normalized pose
  reward.

Prints a table and writes ``benchmarks/results/bench_skills.json``.
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
RESULTS = ROOT / "benchmarks" / "results" / "bench_skills.json"
DATA = ROOT / "benchmarks" / "results" / "data"
SEED0 = 1000
DEFAULT_SKILLS = "walk,backflip,jump"


def spinkick():
    """The shipped spinkick as a :class:`sim.skills.Skill` (offered by no registered env)."""
    from sim.skills import Skill

    return Skill(name="spinkick", env_id="sim/HumanoidWalk-v0",
                 clip="data/motions/humanoid3d_spinkick.txt",
                 checkpoint="data/policies/humanoid3d/humanoid3d_spinkick.ckpt",
                 episode_seconds=10.0, travels=False, mirror_phase_shift=None,
                 summary="spinning kick (not offered)")  # fmt: skip


def skill_setup(name: str):
    """(skill, env id, env kwargs, expert) for a skill name."""
    import sim
    from sim.experts import load_deepmimic_expert

    if name == "spinkick":
        skill = spinkick()
        return skill, skill.env_id, {"start_phase": "random", "skill": skill}, \
            load_deepmimic_expert(skill)  # fmt: skip
    skill = sim.SKILLS[name]
    return skill, skill.env_id, {"start_phase": "random"}, sim.load_expert(skill.expert)


def summary_row(results: list) -> dict:
    from pipeline.rollout.episodes import summarize

    summary = summarize(results)
    steps = [r.steps for r in results]
    row = {
        "survival_rate": summary["survival_rate"], "survival_ci95": summary["survival_ci95"],
        "pose_reward": summary["pose_reward"]["mean"], "survived_s": summary["survived_s"]["mean"],
        "mean_steps": sum(steps) / len(steps),
        "steps_per_s_per_worker": summary.get("steps_per_s_per_worker"),
    }  # fmt: skip
    if "distance" in summary:
        row["distance"] = summary["distance"]["mean"]
    return row


def experts(name: str, seeds: list[int], workers: int) -> tuple[dict, dict]:
    import gymnasium as gym

    from pipeline.rollout.policies import ExpertPolicy, RandomPolicy
    from pipeline.rollout.workers import EpisodeTask, run_episodes

    skill, env_id, kwargs, expert = skill_setup(name)
    env = gym.make(env_id)
    low, high = env.action_space.low.astype(float), env.action_space.high.astype(float)
    env.close()
    tasks = [EpisodeTask(s) for s in seeds]
    results = {
        "expert": run_episodes(env_id, kwargs, ExpertPolicy(expert), tasks, workers),
        "random": run_episodes(env_id, kwargs, RandomPolicy(low, high), tasks, workers),
    }
    entry = {who: summary_row(r) for who, r in results.items()}
    entry["episode_seconds"] = skill.episode_seconds
    return entry, results


def demonstrations(name: str, episodes: int) -> Path:
    import sim
    from pipeline.stages.record import RecordConfig, record

    path = DATA / f"skills-{name}-plain-{episodes}.h5"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        record(RecordConfig(out=path, env_id=sim.SKILLS[name].env_id, episodes=episodes, seed=0,
                            workers=2))  # fmt: skip
    return path


def validation_episodes(n: int) -> int:
    return max(1, round(n / 4))


def train_policy(data: Path, env_id: str, n: int, seed: int, source: Path | None, freeze: int,
                 epochs: int | None, out: Path) -> tuple[Path, float]:  # fmt: skip
    from pipeline.algorithms.behaviour_cloning import train_from_file
    from pipeline.algorithms.train_config import resolve_train_config

    v = validation_episodes(n)
    overrides = [f"seed={seed}", f"data.max_episodes={n + v}", f"data.val_fraction={v / (n + v)}"]
    if epochs is not None:
        overrides.append(f"training.epochs={epochs}")
    if source is not None:
        overrides += [f"init.from_policy={source}", f"init.freeze={freeze}"]
    start = time.perf_counter()
    config = resolve_train_config(overrides=overrides, env_id=env_id)
    trained = train_from_file(data, config, out, tracking_uri=None)
    assert trained.train_episodes == n, (trained.train_episodes, n)
    return out, time.perf_counter() - start


def score(policy: Path, seeds: list[int], base: dict) -> dict:
    """A trained policy on ``seeds`` beside the expert and random runs in ``base``."""
    from pipeline.stages.evaluate import EvaluateRequest, evaluate, expert_normalized_scores

    report = evaluate(EvaluateRequest(policy=str(policy), episodes=len(seeds), seed=seeds[0]),
                      None)  # fmt: skip
    learner = report.results["learner"]
    scores = expert_normalized_scores({"learner": learner, **base})
    return {
        **summary_row(learner), "normalized_pose_reward": scores["normalized_pose_reward"],
        "survival_on_expert_surviving_starts": scores["survival_on_expert_surviving_starts"],
    }  # fmt: skip


def behaviour_cloning(name: str, demos: int, seed: int, epochs: int | None, seeds: list[int],
                      base: dict, tmp: Path) -> dict:  # fmt: skip
    import sim

    data = demonstrations(name, demos + validation_episodes(demos))
    out, train_s = train_policy(data, sim.SKILLS[name].env_id, demos, seed, None, 0, epochs,
                                tmp / f"{name}-bc-seed{seed}")  # fmt: skip
    return {**score(out, seeds, base), "training_seed": seed, "train_s": train_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 seeds, 3 demos, 1 training seed")
    parser.add_argument("--skills", default=DEFAULT_SKILLS)
    parser.add_argument("--no-bc", action="store_true", help="Experts only.")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    episodes, demos, training_seeds, epochs = (
        (4, 3, [0], 2) if args.quick else (40, 25, [0, 1, 2], None)
    )
    seeds = list(range(SEED0, SEED0 + episodes))
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "seeds": [seeds[0], seeds[-1]], "demos": demos, "skills": {},
    }  # fmt: skip
    # Another selection of skills (e.g. the spinkick probe) keeps the main results.
    suffix = "" if args.skills == DEFAULT_SKILLS else "_" + args.skills.replace(",", "_")
    out = RESULTS.with_name(f"bench_skills{suffix}{'_quick' if args.quick else ''}.json")
    with tempfile.TemporaryDirectory() as tmp_dir:
        for name in args.skills.split(","):
            entry, base = experts(name, seeds, args.workers)
            print(f"{name}: experts done", flush=True)
            if not args.no_bc and name != "spinkick":
                entry["bc"] = [
                    behaviour_cloning(name, demos, s, epochs, seeds, base, Path(tmp_dir))
                    for s in training_seeds
                ]
                print(f"{name}: bc done", flush=True)
            report["skills"][name] = entry
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print_table(report)
    print(f"results: {out}")
    return 0


def print_table(report: dict) -> None:
    table = Table(title=f"skills, seeds {report['seeds'][0]}-{report['seeds'][1]}, random start")
    for column in ("skill", "policy", "survival [95% CI]", "pose reward", "steps", "distance m",
                   "steps/s"):  # fmt: skip
        table.add_column(column)

    def add(skill: str, who: str, row: dict) -> None:
        low, high = row["survival_ci95"]
        table.add_row(skill, who,
                      f"{100 * row['survival_rate']:.0f}% [{100 * low:.0f}-{100 * high:.0f}]",
                      f"{row['pose_reward']:.2f}", f"{row['mean_steps']:.0f}",
                      f"{row['distance']:.1f}" if "distance" in row else "-",
                      f"{row['steps_per_s_per_worker']:.0f}"
                      if row.get("steps_per_s_per_worker") else "-")  # fmt: skip

    for skill, entry in report["skills"].items():
        add(skill, "expert", entry["expert"])
        add(skill, "random", entry["random"])
        for row in entry.get("bc", []):
            add(skill, f"BC seed {row['training_seed']}", row)
    Console().print(table)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
