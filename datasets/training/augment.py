"""Data augmentation for the training split: pure NumPy functions with an explicit RNG.

Everything works in raw (unnormalized) units, because normalization lives inside the Keras
model; the feature statistics of the training split (``datasets.training.stats``) give the scale.
Inputs may be flat ``(N, D)`` batches or history windows ``(N, K, D)``: per-feature
arrays broadcast over the last axis, and a mirrored sample is mirrored as a whole window.

Only the training split is augmented; the input pipeline refuses an augmenter for
validation data. Randomness comes only from the ``np.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from datasets.training.stats import FeatureStats

if TYPE_CHECKING:  # only its methods are called: importing sim (PyBullet) is left to callers
    from sim.mirror import MirrorSpec


def _float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def gaussian_noise(
    obs: np.ndarray, std: np.ndarray, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """``obs + N(0, 1) * scale * std``: noise of ``scale`` standard deviations per feature.

    ``std`` is the unfloored per-feature std of the training split (``FeatureStats.std``):
    a constant feature (std 0) stays exact instead of receiving noise of an arbitrary unit.
    """
    obs = _float(obs)
    if scale < 0:
        raise ValueError(f"noise scale must be >= 0, got {scale}")
    noise = rng.standard_normal(obs.shape, dtype=obs.dtype)
    return obs + noise * (scale * np.asarray(std, dtype=obs.dtype))


def feature_dropout(
    obs: np.ndarray,
    rate: float,
    fill: np.ndarray,
    rng: np.random.Generator,
    *,
    rescale: bool = False,
) -> np.ndarray:
    """Input-feature dropout: each element is dropped with probability ``rate``.

    A dropped feature is set to ``fill``, the feature's training mean: inside the model
    z-score normalization maps the mean to 0, so this is the usual "replace by 0" of
    input dropout, applied where the network sees its inputs (a raw 0 would be an
    out-of-distribution value, e.g. a root height of 0 m).

    No 1/(1-rate) rescaling by default. Inverted dropout rescales hidden activations so
    their expectation is unchanged between training and test, but here the kept values
    are the real state that the policy must map to an action precisely: stretching them
    about the mean by 1/(1-rate) would teach wrong state-action pairs for every kept
    feature, while at test time no feature is ever stretched. ``rescale=True`` gives the
    inverted-dropout form, ``mean + (x - mean) / (1 - rate)`` for kept features,
    for comparison.
    """
    obs = _float(obs)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    fill = np.asarray(fill, dtype=obs.dtype)
    keep = rng.random(obs.shape, dtype=np.float32) >= rate
    kept = fill + (obs - fill) / (1.0 - rate) if rescale else obs
    return np.where(keep, kept, fill)


def check_mirror(mirror: MirrorSpec, obs_dim: int, act_dim: int) -> None:
    """Raise ValueError unless ``mirror`` maps ``obs_dim`` observations and ``act_dim`` actions."""
    if (mirror.obs_dim, mirror.act_dim) != (obs_dim, act_dim):
        raise ValueError(
            f"the mirror map of {mirror.env_id} is for {mirror.obs_dim} observations and "
            f"{mirror.act_dim} actions, the data has {obs_dim} and {act_dim}"
        )


def mirror_batch(
    obs: np.ndarray,
    act: np.ndarray,
    mirror: MirrorSpec,
    rng: np.random.Generator,
    prob: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror each sample (observation or window, and its action) with probability ``prob``.

    ``obs`` is ``(N, ..., obs_dim)`` and ``act`` ``(N, act_dim)``, raw (unnormalized); the
    same samples are mirrored in both, and a window is mirrored as a whole. The mirroring
    is the environment's own, ``mirror.mirror_obs``/``mirror.mirror_act`` (``sim.mirror``):
    beyond the left/right swap with signs it shifts the walk's clip phase by half a cycle.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"mirror probability must be in [0, 1], got {prob}")
    obs, act = _float(obs), _float(act)
    if len(obs) != len(act):
        raise ValueError(f"{len(obs)} observations but {len(act)} actions")
    check_mirror(mirror, obs.shape[-1], act.shape[-1])  # even when no sample is drawn
    flip = rng.random(len(obs)) < prob
    obs, act = obs.copy(), act.copy()
    if flip.any():
        obs[flip], act[flip] = mirror.mirror_obs(obs[flip]), mirror.mirror_act(act[flip])
    return obs, act


@dataclass(frozen=True, eq=False)
class Augmenter:
    """The training-time augmentation of a batch: mirror, then noise, then dropout.

    Mirroring comes first so that noise and dropout use the statistics of the feature a
    value lands in. Call it as ``obs, act = augmenter(obs, act, rng)``.
    """

    noise_std: float = 0.0
    """Gaussian observation noise, in multiples of each feature's std (0 = off)."""
    feature_dropout: float = 0.0
    """Probability of dropping each observation element to its mean (0 = off)."""
    mirror: MirrorSpec | None = None
    """Left/right mirror map of the data's environment (``sim.mirror.mirror_spec``), or None."""
    mirror_prob: float = 0.5
    """Probability that a sample is mirrored (when ``mirror`` is set)."""
    obs_std: np.ndarray | None = None
    """Per-feature std of the training observations (needed for noise)."""
    obs_mean: np.ndarray | None = None
    """Per-feature mean of the training observations (needed for dropout)."""
    dropout_rescale: bool = False
    """Inverted-dropout scaling of kept features (see :func:`feature_dropout`)."""

    def __post_init__(self) -> None:
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        if not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")
        if not 0.0 <= self.mirror_prob <= 1.0:
            raise ValueError(f"mirror_prob must be in [0, 1], got {self.mirror_prob}")
        if self.noise_std > 0 and self.obs_std is None:
            raise ValueError("noise_std > 0 needs obs_std (the training observations' std)")
        if self.feature_dropout > 0 and self.obs_mean is None:
            raise ValueError("feature_dropout > 0 needs obs_mean (the training observations' mean)")

    @classmethod
    def from_stats(cls, obs_stats: FeatureStats, **options: Any) -> Augmenter:
        """An augmenter with ``obs_std``/``obs_mean`` taken from the training statistics."""
        return cls(obs_std=obs_stats.std, obs_mean=obs_stats.mean, **options)

    @property
    def active(self) -> bool:
        """Whether calling it changes anything."""
        mirroring = self.mirror is not None and self.mirror_prob > 0
        return self.noise_std > 0 or self.feature_dropout > 0 or mirroring

    def check(self, obs_dim: int, act_dim: int) -> None:
        """Raise ValueError if the mirror map or statistics do not fit these sizes."""
        if self.mirror is not None:
            check_mirror(self.mirror, obs_dim, act_dim)
        for name in ("obs_std", "obs_mean"):
            value = getattr(self, name)
            if value is not None and np.shape(value)[-1:] not in ((obs_dim,), ()):
                raise ValueError(f"{name} has shape {np.shape(value)}, observations {obs_dim}")

    def __call__(
        self, obs: np.ndarray, act: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The augmented ``(obs, act)`` batch (new arrays; the inputs are not modified)."""
        if self.mirror is not None and self.mirror_prob > 0:
            obs, act = mirror_batch(obs, act, self.mirror, rng, self.mirror_prob)
        if self.noise_std > 0:
            obs = gaussian_noise(obs, self.obs_std, self.noise_std, rng)
        if self.feature_dropout > 0:
            obs = feature_dropout(
                obs, self.feature_dropout, self.obs_mean, rng, rescale=self.dropout_rescale
            )
        return obs, act


def random_shift(frames: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each sample's frames moved by a random whole-pixel offset in ``[-max_shift, max_shift]``
    along both axes, the border pixels repeated into the gap (DrQ's pad-and-crop).

    ``frames`` is ``(N, H, W, C)`` or a frame stack ``(N, K, H, W, C)``; all frames of one
    sample move together, so a stack stays consistent. The dtype is kept (uint8 in, uint8 out).
    """
    if max_shift < 0:
        raise ValueError(f"image shift must be >= 0, got {max_shift}")
    frames = np.asarray(frames)
    if max_shift == 0 or len(frames) == 0:
        return frames.copy()
    n, (height, width) = len(frames), frames.shape[-3:-1]
    lead = frames.ndim - 4  # the frame-stack axis, if any
    offsets = rng.integers(-max_shift, max_shift + 1, size=(2, n))
    # Reading row r + dy, clipped to the image, is exactly padding by the edge pixels.
    rows = np.clip(np.arange(height)[None] + offsets[0][:, None], 0, height - 1)
    cols = np.clip(np.arange(width)[None] + offsets[1][:, None], 0, width - 1)
    shape = (n, *([1] * lead))
    rows = rows.reshape(*shape, height, 1, 1)
    cols = cols.reshape(*shape, 1, width, 1)
    moved = np.take_along_axis(frames, rows, axis=frames.ndim - 3)
    return np.take_along_axis(moved, cols, axis=frames.ndim - 2)


_BRIGHTNESS_CHUNK = 256
"""Samples scaled at a time: float copies of a whole group of 84x84 frames take ~170 MB."""


def random_brightness(frames: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Each sample's pixels scaled by one factor drawn uniformly from ``[1 - amount,
    1 + amount]``, rounded and clipped to 0..255 (uint8 in, uint8 out); a frame stack
    ``(N, K, H, W, C)`` shares its sample's factor."""
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"image brightness must be in [0, 1), got {amount}")
    frames = np.asarray(frames)
    factors = rng.uniform(1.0 - amount, 1.0 + amount, size=len(frames)).astype(np.float32)
    if amount == 0.0:
        return frames.copy()
    out = np.empty_like(frames)
    for start in range(0, len(frames), _BRIGHTNESS_CHUNK):
        part = slice(start, start + _BRIGHTNESS_CHUNK)
        factor = factors[part].reshape(-1, *([1] * (frames.ndim - 1)))
        scaled = np.rint(frames[part].astype(np.float32) * factor)
        out[part] = np.clip(scaled, 0, 255)
    return out


@dataclass(frozen=True)
class ImageAugmenter:
    """Training-time augmentation of camera frames: a random shift, then a brightness
    change, each drawn per sample from the RNG passed in. Call it as
    ``frames = augmenter(frames, rng)``."""

    shift: int = 0
    """Largest shift in pixels along each axis (0 = off)."""
    brightness: float = 0.0
    """Largest relative brightness change (0 = off)."""

    def __post_init__(self) -> None:
        if self.shift < 0:
            raise ValueError(f"image shift must be >= 0, got {self.shift}")
        if not 0.0 <= self.brightness < 1.0:
            raise ValueError(f"image brightness must be in [0, 1), got {self.brightness}")

    @property
    def active(self) -> bool:
        """Whether calling it changes anything."""
        return self.shift > 0 or self.brightness > 0

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The augmented frames (a new array)."""
        if self.shift > 0:
            frames = random_shift(frames, self.shift, rng)
        if self.brightness > 0:
            frames = random_brightness(frames, self.brightness, rng)
        return frames
