"""Record one expert demonstration: an episode's arrays, with optional noise injection.

DART-style noise injection: the executed action is the expert's plus Gaussian noise of
``noise`` times the expert's per-dimension action scale, while the stored label is the
clean expert action, so the demonstrations visit the states a slightly-off learner
reaches and show how the expert recovers from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from datasets import Episode
from sim import MLPExpert


def attempt_seed(base_seed: int, attempt: int) -> int:
    """Reset seed of attempt ``attempt``: a function of (base seed, attempt) only, so an
    attempt is the same episode whichever worker runs it and however often it is resumed."""
    return int(np.random.SeedSequence([base_seed, attempt]).generate_state(1, np.uint32)[0])


def noise_rng(base_seed: int, attempt: int) -> np.random.Generator:
    """The noise generator of an attempt, independent of the environment's own stream."""
    return np.random.default_rng(np.random.SeedSequence([base_seed, attempt, 1]))


@dataclass(frozen=True)
class DemoTask:
    """One recording attempt."""

    attempt: int
    """Attempt index (0-based, never reused within a file)."""
    base_seed: int
    """The recording's ``--seed``; the attempt's seeds derive from it."""
    noise: float = 0.0
    """Noise scale in units of the expert's action scale (0 = clean expert)."""
    options: dict[str, Any] | None = None
    """Reset options passed to the environment."""


def record_demonstration(env: gym.Env, expert: MLPExpert, task: DemoTask) -> Episode:
    """Run the expert for one episode and return its arrays (labels are clean actions).

    Applied actions are cast to the action space's dtype first, so the stored executed
    action is bit-for-bit what the simulation received (the walk amplifies even float32
    rounding differences into a different trajectory).
    """
    seed = attempt_seed(task.base_seed, task.attempt)
    rng = noise_rng(task.base_seed, task.attempt)
    dtype = env.action_space.dtype
    obs, _ = env.reset(seed=seed, options=task.options)
    observations, labels, executed, rewards, terms, truncs = [obs], [], [], [], [], []
    infos: dict[str, list[float]] = {}
    terminated = truncated = False
    info: dict[str, Any] = {}
    while not (terminated or truncated):
        label = expert.act(obs).astype(dtype)
        action = label
        if task.noise > 0:
            noise = rng.normal(size=label.shape) * task.noise * expert.action_scale
            action = (label + noise).astype(dtype)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        labels.append(label)
        executed.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        for key, value in info.items():
            if isinstance(value, int | float | bool | np.number | np.bool_):
                infos.setdefault(key, []).append(float(value))
    return Episode(
        observations=np.asarray(observations, dtype=env.observation_space.dtype),
        actions=np.asarray(labels, dtype=dtype),
        executed_actions=np.asarray(executed, dtype=dtype) if task.noise > 0 else None,
        rewards=np.asarray(rewards, dtype=np.float64),
        terminations=np.asarray(terms, dtype=bool),
        truncations=np.asarray(truncs, dtype=bool),
        infos={k: np.asarray(v) for k, v in infos.items() if len(v) == len(rewards)},
        seed=seed,
        attempt=task.attempt,
        fell=bool(info.get("fell", terminated)),
        distance=float(info.get("distance", math.nan)),
    )
