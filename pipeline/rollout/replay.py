"""Replaying recorded episodes: reset the file's environment with an episode's stored seed,
step it with the actions that were executed, and measure how far the states drift from the
stored observations.

Recording and replay on the same machine and build run the same float operations, so a
replay is exact (deviation 0). Another CPU, BLAS kernel or library build rounds differently
in the last bits and the walk's contacts amplify it (DESIGN.md: a foot contact flag flipped
at step 8 under another OpenBLAS kernel): there the first step that deviates is the
interesting number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import PipelineError


@dataclass(frozen=True)
class ReplayResult:
    """How one episode's replay compares with its recording."""

    episode: int
    steps: int
    """Actions replayed."""
    max_deviation: float
    """Largest absolute difference between a replayed and a stored observation."""
    first_step: int | None
    """First state (0 = after the reset) that differs at all; None for an exact replay."""
    deviation_at_first: float
    """The largest difference in that first differing state (0 for an exact replay)."""
    ended_early: bool
    """The replay fell or stopped before the recorded episode's end."""

    @property
    def exact(self) -> bool:
        return self.first_step is None and not self.ended_early

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exact": self.exact}


def replay_episode(env: Any, view: Any) -> ReplayResult:
    """Replay one stored episode (``view``) in ``env`` (made with the file's arguments)."""
    stored = view.observations
    executed = view.executed_actions
    actions = view.actions if executed is None else executed
    obs, _ = env.reset(seed=int(view.info.seed))
    deviations = [float(np.max(np.abs(np.asarray(obs, np.float64) - stored[0])))]
    ended_early = False
    for step, action in enumerate(actions, start=1):
        obs, _, terminated, truncated, _ = env.step(action)
        deviations.append(float(np.max(np.abs(np.asarray(obs, np.float64) - stored[step]))))
        if (terminated or truncated) and step < len(actions):
            ended_early = True
            break
    differing = np.flatnonzero(np.asarray(deviations) > 0.0)
    first = int(differing[0]) if differing.size else None
    return ReplayResult(episode=view.id, steps=len(deviations) - 1,
                        max_deviation=max(deviations), first_step=first,
                        deviation_at_first=deviations[first] if first is not None else 0.0,
                        ended_early=ended_early)  # fmt: skip


def replay_file(path: Path, episodes: int | None = None) -> list[ReplayResult]:
    """Replay the first ``episodes`` episodes of ``path`` (all with None); one line naming
    ``--replay`` for a file whose episodes cannot be replayed."""
    import gymnasium as gym

    import sim
    from datasets import open_dataset
    from datasets.interchange.minari_format import UNKNOWN_SEED

    if episodes is not None and episodes < 1:
        raise PipelineError(f"--episodes: must be at least 1, got {episodes}")
    with open_dataset(path) as ds:
        meta = ds.metadata
        if meta.env_id not in sim.ENV_IDS:
            raise PipelineError(f"--replay: {path} was recorded in {meta.env_id}, not one of "
                                "our environments")  # fmt: skip
        ids = ds.episode_ids()[:episodes]
        unseeded = [i for i in ids if ds.episode(i).info.seed == UNKNOWN_SEED]
        if unseeded:
            raise PipelineError(
                f"--replay: {path} has no reset seed for episode {unseeded[0]} (and "
                f"{len(unseeded) - 1} more); it cannot be replayed"
            )
        env = gym.make(meta.env_id, **meta.env_kwargs)
        try:
            return [replay_episode(env, ds.episode(i)) for i in ids]
        finally:
            env.close()
