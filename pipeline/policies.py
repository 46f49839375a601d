"""Policies that can be rolled out: the shipped experts and a uniform random policy.

A policy is any picklable object with ``reset(seed)`` and ``act(obs) -> action``; the
rollout workers receive it once and keep it, so it must be cheap to pickle (NumPy only,
no TensorFlow objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pipeline.errors import PipelineError
from sim import EXPERT_FOR_ENV, MLPExpert, expert_names, load_expert


class Policy(Protocol):
    """What a rollout needs from a policy."""

    name: str

    def reset(self, seed: int) -> None:
        """Start a new episode; any randomness of the policy derives from ``seed``."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action for one observation."""


@dataclass
class ExpertPolicy:
    """A shipped NumPy expert, deterministic."""

    expert: MLPExpert
    name: str = "expert"

    def reset(self, seed: int) -> None:
        del seed  # the expert is deterministic

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.expert.act(obs)


@dataclass
class RandomPolicy:
    """Uniform random actions within the action space's bounds."""

    low: np.ndarray
    high: np.ndarray
    name: str = "random"
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0), repr=False)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        del obs
        return self._rng.uniform(self.low, self.high)


POLICY_CHOICES = ("expert", "random")


def check_policy_name(spec: str, env_id: str) -> str | None:
    """Validate a ``--policy`` value without loading anything; returns the expert name or None."""
    if spec == "random":
        return None
    name = EXPERT_FOR_ENV.get(env_id) if spec == "expert" else spec
    if spec == "expert" and name is None:
        raise PipelineError(f"--policy expert: no shipped expert for env '{env_id}'")
    if name not in expert_names():
        choices = ", ".join([*POLICY_CHOICES, *expert_names()])
        raise PipelineError(f"--policy: unknown policy '{spec}' (choose one of {choices})")
    if EXPERT_FOR_ENV.get(env_id) != name:
        raise PipelineError(f"--policy: expert '{name}' does not act in {env_id}")
    return name


def resolve_policy(
    spec: str, env_id: str, action_low: np.ndarray, action_high: np.ndarray
) -> Policy:
    """Turn a ``--policy`` value into a policy for ``env_id``.

    ``expert`` is the shipped expert of the env; an expert name selects one explicitly
    (it must match the env); ``random`` samples uniform actions.
    """
    name = check_policy_name(spec, env_id)
    if name is None:
        return RandomPolicy(np.asarray(action_low, float), np.asarray(action_high, float))
    return ExpertPolicy(load_expert(name))
