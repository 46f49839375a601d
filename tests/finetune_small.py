"""What the fine-tuning tests share: a tiny walk policy and a fine-tuning run of six small
updates."""

from __future__ import annotations

from pathlib import Path

WALK = "sim/HumanoidWalk-v0"
SMALL = [
    "steps=1536", "steps_per_update=256", "segments=2", "ppo.minibatch=128",
    "critic.warmup_updates=1", "critic.warmup_epochs=2", "selection.every=2",
    "selection.episodes=2", "curriculum.episode_seconds=1",
]  # fmt: skip
"""Six updates (one warm-up) of 256 steps, a selection every two policy updates."""


def tiny_walk_policy(root: Path) -> Path:
    """A walk MLP (16-16) trained for one epoch on three one-second demonstrations, in
    ``root/run``: it falls, which is all the loop needs. Returns its policy directory."""
    from pipeline.algorithms.behaviour_cloning import train_from_file
    from pipeline.stages.record import RecordConfig, record
    from pipeline.training.config import load_config

    data = root / "walk.h5"
    record(RecordConfig(out=data, env_id=WALK, episodes=3, seed=0, episode_seconds=1.0))
    config = load_config(None, ["model.hidden_sizes=[16,16]", "training.epochs=1"])
    train_from_file(data, config, root / "run", tracking_uri=None)
    return root / "run" / "policy"
