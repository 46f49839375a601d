"""Policies that can be rolled out: the shipped experts and a uniform random policy.

A policy is any picklable object with ``reset(seed)`` and ``act(obs) -> action``; the
rollout workers receive it once and keep it, so it must be cheap to pickle (NumPy only,
no TensorFlow objects).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pipeline.core.errors import PipelineError
from sim import EXPERT_FOR_ENV, MLPExpert, expert_names, load_expert

if TYPE_CHECKING:
    from datasets.store.schema import CameraSpec
    from models import LoadedPolicy
    from models.exported import ExportedPolicy


class Policy(Protocol):
    """What a rollout needs from a policy. A policy with a ``camera`` attribute that is not
    None also receives each state's camera frame: ``act(obs, frame)``."""

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


@dataclass
class LearnedPolicy:
    """A trained policy in a rollout: keeps its observation (and frame) history and calls
    its compiled forward pass once per step.

    The first observation of an episode fills the whole window, as the training windows
    pad episode starts (``datasets.training.windows``). A policy with a ``camera`` acts on
    the camera frame of each state too (``act(obs, frame)``; the rollout renders it). A
    NumPy forward pass travels to worker processes as arrays; any other (the TensorFlow
    fallback) is rebuilt in the worker from ``directory``.
    """

    forward: Any
    history: int
    directory: str | None = None
    name: str = "learner"
    camera: CameraSpec | None = None
    """The camera whose frames the policy sees (size and view); None: state only."""
    inputs: str = "state"
    """``state``, ``image`` or ``image+state``: which arrays the forward pass takes."""
    _window: deque = field(default_factory=deque, repr=False)
    _frames: deque = field(default_factory=deque, repr=False)

    @classmethod
    def from_loaded(cls, loaded: LoadedPolicy | ExportedPolicy) -> LearnedPolicy:
        """A loaded policy (``models.load_policy``) with its compiled forward pass, or an
        exported one (``models.exported``) in its own runtime."""
        from models.exported import ExportedPolicy
        from models.inference import compile_forward

        spec = loaded.spec
        forward = (loaded.forward if isinstance(loaded, ExportedPolicy)
                   else compile_forward(loaded.model))  # fmt: skip
        return cls(forward, spec.history, directory=str(loaded.directory),
                   camera=spec.camera, inputs=spec.inputs)  # fmt: skip

    def reset(self, seed: int) -> None:
        del seed  # deterministic
        self._window = deque(maxlen=self.history)
        self._frames = deque(maxlen=self.history)

    def _latest(self, window: deque, x: np.ndarray) -> np.ndarray:
        if self.history == 1:
            return x[None]
        if not window:
            window.extend([x] * self.history)
        else:
            window.append(x)
        return np.stack(window)[None]

    def act(self, obs: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        if self.forward is None:
            self.forward = _load_forward(self.directory)
        inputs = []
        if self.camera is not None:
            if frame is None:
                raise ValueError(f"policy {self.name} sees camera frames: act(obs, frame)")
            inputs.append(self._latest(self._frames, np.asarray(frame, dtype=np.uint8)))
        if self.inputs != "image":
            inputs.append(self._latest(self._window, np.asarray(obs, dtype=np.float32)))
        return self.forward(*inputs)[0]

    def __getstate__(self) -> dict[str, Any]:
        from models.inference import KerasForward

        state = dict(self.__dict__)
        # NumPy and exported forward passes pickle themselves; a tf.function does not.
        if isinstance(self.forward, KerasForward):
            if self.directory is None:
                raise TypeError("a TensorFlow forward pass needs its policy directory to travel")
            state["forward"] = None
        return state


def _load_forward(directory: str | None) -> Any:
    from models import load_policy
    from models.inference import compile_forward

    return compile_forward(load_policy(directory).model)


@dataclass(frozen=True)
class ExpertRelabeller:
    """Scores an action against the expert's action on the same state: the mean squared
    difference in units of the policy's action std (the units of its validation loss)."""

    expert: MLPExpert
    act_std: np.ndarray

    def __call__(self, obs: np.ndarray, action: np.ndarray) -> float:
        expert_action = np.asarray(self.expert.act(obs), dtype=np.float64)
        diff = (np.asarray(action, dtype=np.float64) - expert_action) / self.act_std
        return float(np.mean(diff * diff))
