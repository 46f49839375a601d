"""Gaussian noise on executed actions, in units of the env's expert action scale.

Recording uses it as DART's noise injection (the stored label stays the clean expert
action; :mod:`pipeline.rollout.demonstration`). Evaluation uses it as a perturbation test
(``pipeline evaluate --action-noise``): measured on seeds 2000-2299, the walk expert under
0.001 of its action scale survives only 90-94% of the starts it survives without noise, and
under 0.0001 about 95%, so a learner's figure on the expert's starts has that much slack
even for the expert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.rollout.policies import Policy

EVALUATION_STREAM = 7919
"""Mixed with an episode's seed into its noise generator: a stream of its own, apart from
the environment's and any policy's."""


@dataclass(frozen=True)
class ActionNoise:
    """Zero-mean Gaussian noise of ``sigma`` times ``scale`` per action dimension."""

    sigma: float
    """Standard deviation in units of ``scale``."""
    scale: np.ndarray
    """Per-dimension action scale: the env's expert's (``MLPExpert.action_scale``)."""

    def perturb(self, action: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``action`` plus one draw of the noise from ``rng``."""
        return action + rng.normal(size=action.shape) * self.sigma * self.scale


def check_action_noise(sigma: float) -> float:
    """An ``--action-noise`` value: a finite number >= 0."""
    if not (math.isfinite(sigma) and sigma >= 0):
        raise PipelineError(
            f"--action-noise: {sigma} must be a finite number >= 0 (in the expert's action scales)"
        )
    return sigma


@dataclass
class NoisyPolicy:
    """``policy`` whose every action gets ``noise`` added before the env executes it.

    The noise generator is reseeded from each episode's seed, so every policy evaluated on
    a seed meets the same sequence of draws, and a replay of the seed (a video) follows
    the measured episode.
    """

    policy: Policy
    noise: ActionNoise
    stream: int = EVALUATION_STREAM
    """Mixed with the episode's seed; another stream gives an independent draw of the noise
    on the same starts (the evaluation's is ``EVALUATION_STREAM``)."""
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0), repr=False)

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def camera(self) -> Any:
        """The wrapped policy's camera (None: it acts on the state alone)."""
        return getattr(self.policy, "camera", None)

    def reset(self, seed: int) -> None:
        self.policy.reset(seed)
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, self.stream]))

    def act(self, obs: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        action = self.policy.act(obs) if frame is None else self.policy.act(obs, frame)  # type: ignore[call-arg]
        return self.noise.perturb(np.asarray(action), self._rng)


def describe_action_noise(sigma: float, whose: str = "the learner and the expert") -> str:
    """One line saying how the actions of ``whose`` were perturbed."""
    return (f"Gaussian noise of {sigma:g} x the expert's action scale on every executed "
            f"action of {whose}, drawn from the episode's seed")  # fmt: skip
