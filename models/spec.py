"""The policy spec: what a policy eats and produces, and the statistics that scale both.

A spec is plain data (JSON round trip, no Keras) saved next to every policy, so a reloaded
policy says which environment it drives, how long an observation history it needs, and where
its normalization statistics came from. The statistics themselves are also baked into the
Keras model (its first and last layers), which is what makes a saved policy map raw
observations to raw actions on its own; the copies here serve the training side (targets are
z-scored actions) and inspection.

Both normalizations are expressed as ``(x - mean) / sqrt(variance)``, the form Keras'
``Normalization`` layer implements: z-score with the data's mean and variance, min-max
(to [0, 1]) with ``mean = min`` and ``variance = (max - min) ** 2``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np

from datasets.store.schema import CameraSpec

SPEC_VERSION = 1
"""Bumped whenever a change would make an older reader misread a spec."""
OBS_NORMALIZATIONS = ("zscore", "minmax")
MIN_VARIANCE = 1e-12
"""Variances at or below this (std <= 1e-6) count as constant features: the factories give
them variance 1, so they are shifted but not blown up by a near-zero divisor."""
KERAS_EPSILON = 1e-7
"""Keras' ``Normalization`` divides by ``max(sqrt(variance), epsilon)``; mirrored here."""

ObsNormalization = Literal["zscore", "minmax"]
PolicyInputs = Literal["state", "image", "image+state"]
POLICY_INPUTS: tuple[str, ...] = PolicyInputs.__args__
IMAGE_INPUT = "image"
"""Name of the camera-frame input of image policies (uint8 frames, raw pixels)."""
OBS_INPUT = "observation"
"""Name of the state-observation input."""


def _floats(values: Any, name: str, size: int) -> tuple[float, ...]:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size != size:
        raise ValueError(f"{name} has {array.size} values, expected {size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tuple(float(v) for v in array)


def _safe_variance(variance: Any) -> np.ndarray:
    variance = np.asarray(variance, dtype=np.float64)
    return np.where(variance <= MIN_VARIANCE, 1.0, variance)


@dataclass(frozen=True, kw_only=True)
class PolicySpec:
    """Shapes and normalization parameters of a policy (immutable; JSON round trip)."""

    env_id: str
    """Gymnasium id of the environment the policy drives, e.g. ``sim/HumanoidWalk-v0``."""
    obs_dim: int
    """Size of one observation."""
    act_dim: int
    """Size of one action."""
    history: int = 1
    """Observations per input: 1 gives inputs of shape (N, obs_dim); K > 1 gives
    (N, K, obs_dim), oldest first, for temporal models."""
    obs_norm: ObsNormalization = "zscore"
    """How observations are scaled: ``zscore`` or ``minmax`` (to [0, 1])."""
    obs_mean: tuple[float, ...]
    """Per-dimension shift of observations (the mean, or the minimum for min-max)."""
    obs_variance: tuple[float, ...]
    """Per-dimension squared scale of observations (the variance, or (max-min)^2); > 0."""
    act_mean: tuple[float, ...]
    """Per-dimension mean of the expert's actions."""
    act_variance: tuple[float, ...]
    """Per-dimension variance of the expert's actions; > 0."""
    stats_source: str = ""
    """Where the statistics came from, free-form (e.g. the dataset path and split)."""
    stats_digest: str = ""
    """Content digest of that source, free-form (e.g. the dataset's checksum)."""
    inputs: PolicyInputs = "state"
    """What the policy sees: the state observation, camera frames, or both."""
    camera: CameraSpec | None = None
    """The camera whose frames an image policy sees (size and view, as recorded); None for
    state-only policies. With ``history`` K > 1 the policy sees the last K frames."""

    def __post_init__(self) -> None:
        # Normalize sequences to tuples of floats so equality and JSON round trips are exact.
        set_ = object.__setattr__
        for name in ("obs_dim", "act_dim", "history"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            set_(self, name, int(value))
        if self.obs_norm not in OBS_NORMALIZATIONS:
            raise ValueError(f"obs_norm must be one of {OBS_NORMALIZATIONS}, got {self.obs_norm!r}")
        for name, size in (
            ("obs_mean", self.obs_dim),
            ("obs_variance", self.obs_dim),
            ("act_mean", self.act_dim),
            ("act_variance", self.act_dim),
        ):
            set_(self, name, _floats(getattr(self, name), name, size))
        for name in ("obs_variance", "act_variance"):
            if min(getattr(self, name)) <= 0.0:
                raise ValueError(f"{name} must be positive (constant features: use variance 1)")
        if self.inputs not in POLICY_INPUTS:
            raise ValueError(f"inputs must be one of {POLICY_INPUTS}, got {self.inputs!r}")
        if isinstance(self.camera, Mapping):
            set_(self, "camera", CameraSpec(**self.camera))
        if (self.camera is None) != (self.inputs == "state"):
            raise ValueError(f"inputs {self.inputs!r} needs a camera exactly when it sees images")

    @classmethod
    def from_zscore(
        cls,
        *,
        env_id: str,
        obs_mean: Sequence[float],
        obs_variance: Sequence[float],
        act_mean: Sequence[float],
        act_variance: Sequence[float],
        history: int = 1,
        stats_source: str = "",
        stats_digest: str = "",
    ) -> PolicySpec:
        """A spec z-scoring observations; (near-)constant dimensions get variance 1."""
        obs_mean = np.asarray(obs_mean, dtype=np.float64).ravel()
        act_mean = np.asarray(act_mean, dtype=np.float64).ravel()
        return cls(
            env_id=env_id,
            obs_dim=obs_mean.size,
            act_dim=act_mean.size,
            history=history,
            obs_norm="zscore",
            obs_mean=obs_mean,
            obs_variance=_safe_variance(obs_variance),
            act_mean=act_mean,
            act_variance=_safe_variance(act_variance),
            stats_source=stats_source,
            stats_digest=stats_digest,
        )

    @classmethod
    def from_minmax(
        cls,
        *,
        env_id: str,
        obs_min: Sequence[float],
        obs_max: Sequence[float],
        act_mean: Sequence[float],
        act_variance: Sequence[float],
        history: int = 1,
        stats_source: str = "",
        stats_digest: str = "",
    ) -> PolicySpec:
        """A spec scaling observations to [0, 1]; constant dimensions are only shifted."""
        low = np.asarray(obs_min, dtype=np.float64).ravel()
        high = np.asarray(obs_max, dtype=np.float64).ravel()
        if low.shape != high.shape:
            raise ValueError(f"obs_min has {low.size} values, obs_max {high.size}")
        if np.any(high < low):
            raise ValueError("obs_max is below obs_min in some dimension")
        act_mean = np.asarray(act_mean, dtype=np.float64).ravel()
        return cls(
            env_id=env_id,
            obs_dim=low.size,
            act_dim=act_mean.size,
            history=history,
            obs_norm="minmax",
            obs_mean=low,
            obs_variance=_safe_variance((high - low) ** 2),
            act_mean=act_mean,
            act_variance=_safe_variance(act_variance),
            stats_source=stats_source,
            stats_digest=stats_digest,
        )

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one state input: ``(obs_dim,)`` or ``(history, obs_dim)``."""
        return (self.obs_dim,) if self.history == 1 else (self.history, self.obs_dim)

    @property
    def uses_images(self) -> bool:
        """Whether the policy sees camera frames."""
        return self.camera is not None

    @property
    def uses_state(self) -> bool:
        """Whether the policy sees the state observation."""
        return self.inputs != "image"

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """Shape of one image input: ``(H, W, 3)`` or ``(history, H, W, 3)``; None without."""
        if self.camera is None:
            return None
        frame = self.camera.frame_shape
        return frame if self.history == 1 else (self.history, *frame)

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape (without the batch axis) of each model input, in the model's order
        (image first)."""
        shapes: dict[str, tuple[int, ...]] = {}
        if self.image_shape is not None:
            shapes[IMAGE_INPUT] = self.image_shape
        if self.uses_state:
            shapes[OBS_INPUT] = self.obs_shape
        return shapes

    def example_inputs(self, rows: int = 1) -> np.ndarray | dict[str, np.ndarray]:
        """A batch of typical inputs (the observation mean, mid-grey frames) as the policy
        takes them: the array of its single input, or a dict keyed by input name."""
        examples: dict[str, np.ndarray] = {}
        for name, shape in self.input_shapes.items():
            if name == IMAGE_INPUT:
                examples[name] = np.full((rows, *shape), 128, dtype=np.uint8)
            else:
                mean = np.asarray(self.obs_mean, dtype=np.float32)
                examples[name] = np.broadcast_to(mean, (rows, *shape)).copy()
        return examples if len(examples) > 1 else next(iter(examples.values()))

    def obs_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """``(shift, divisor)`` as float32, exactly as the model's input layer applies them."""
        return _shift_divisor(self.obs_mean, self.obs_variance)

    def act_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of actions as float32, exactly as the model's output layer uses them."""
        return _shift_divisor(self.act_mean, self.act_variance)

    def normalize_observations(self, obs: Any) -> np.ndarray:
        """Raw observations -> the model's normalized input (float32, any leading shape)."""
        shift, divisor = self.obs_scale()
        return (np.asarray(obs, dtype=np.float32) - shift) / divisor

    def normalize_actions(self, actions: Any) -> np.ndarray:
        """Raw actions -> z-scored actions, the training targets (float32)."""
        mean, std = self.act_scale()
        return (np.asarray(actions, dtype=np.float32) - mean) / std

    def denormalize_actions(self, actions: Any) -> np.ndarray:
        """Z-scored actions -> raw actions (float32); inverse of :meth:`normalize_actions`."""
        mean, std = self.act_scale()
        return mean + np.asarray(actions, dtype=np.float32) * std

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, with ``spec_version``."""
        data = asdict(self)  # the camera becomes a plain mapping, read back by __post_init__
        for name in ("obs_mean", "obs_variance", "act_mean", "act_variance"):
            data[name] = list(data[name])
        return {"spec_version": SPEC_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicySpec:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` with one line on bad data."""
        data = dict(data)
        version = data.pop("spec_version", None)
        if version != SPEC_VERSION:
            raise ValueError(
                f"unsupported spec_version {version!r} (this code reads {SPEC_VERSION})"
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown spec key(s): {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:  # a missing required key
            raise ValueError(str(exc).replace("__init__() ", "")) from None

    def to_json(self) -> str:
        """JSON text (floats written exactly, so the round trip is lossless)."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> PolicySpec:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("a spec must be a JSON object")
        return cls.from_dict(data)


def _shift_divisor(shift: tuple[float, ...], variance: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    divisor = np.maximum(np.sqrt(np.asarray(variance, dtype=np.float32)), np.float32(KERAS_EPSILON))
    return np.asarray(shift, dtype=np.float32), divisor
