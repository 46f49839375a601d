"""Streaming normalization statistics of observations and actions.

The statistics are computed on the training episodes only (validation data must not leak
into the model through its normalization) in one pass over blocks of rows, so memory is
bounded by the block size whatever the file's size. Blocks are merged with Chan et al.'s
pairwise update in float64: each block's mean and sum of squared deviations are computed
two-pass (stable), and merging adds ``delta**2 * n_a * n_b / n`` instead of subtracting
large sums of squares, which would cancel catastrophically.

Normalization happens inside the Keras model, so this module only provides the
parameters, as ``(mean, variance)`` pairs for ``keras.layers.Normalization(mean=,
variance=)``, which computes ``(x - mean) / sqrt(variance)``:

- z-score: ``mean``, ``std**2`` (``(x - mu) / sigma`` over the training set);
- min-max: ``min``, ``(max - min)**2``, so the layer maps ``[min, max]`` onto ``[0, 1]``.

A feature whose spread (std or max - min) is below ``min_scale`` (default 1e-6, raw
units) counts as constant and gets scale 1 (variance 1): it normalizes to ``x - mean``,
0 on the training data. Dividing by a near-zero std would instead turn any change at
inference (or float noise) into values of order 1e6.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from datasets.store.errors import DatasetError
from datasets.store.reader import Dataset, open_dataset
from datasets.store.schema import ACTIONS, OBSERVATIONS

NormalizationMethod = Literal["zscore", "minmax"]
MIN_SCALE = 1e-6
"""Spread (std or range, raw units) below which a feature is treated as constant."""
_ARRAYS = ("mean", "var", "min", "max")


def _frozen(values: Any) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class FeatureStats:
    """Per-dimension statistics of a set of rows (float64 arrays of the feature shape)."""

    count: int
    """Number of rows summarized."""
    mean: np.ndarray
    """Mean of each dimension."""
    var: np.ndarray
    """Population variance (divided by ``count``: sigma squared of the z-score)."""
    min: np.ndarray
    """Smallest value (``inf`` when ``count`` is 0)."""
    max: np.ndarray
    """Largest value (``-inf`` when ``count`` is 0)."""

    def __post_init__(self) -> None:
        for name in _ARRAYS:
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        shapes = {getattr(self, name).shape for name in _ARRAYS}
        if len(shapes) != 1:
            raise ValueError(f"mean, var, min and max must have one shape, got {shapes}")
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one feature vector."""
        return self.mean.shape

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (0 for constant features; no floor)."""
        return np.sqrt(self.var)

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> FeatureStats:
        """Statistics of no rows: the neutral element of :meth:`merge`."""
        return cls(
            0, np.zeros(shape), np.zeros(shape), np.full(shape, np.inf), -np.full(shape, np.inf)
        )

    @classmethod
    def of(cls, rows: np.ndarray) -> FeatureStats:
        """Statistics of ``rows`` (n, *shape), computed in float64 (two-pass variance)."""
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim < 1:
            raise ValueError("rows must have a leading row axis")
        if len(x) == 0:
            return cls.empty(x.shape[1:])
        mean = x.mean(axis=0)
        return cls(len(x), mean, ((x - mean) ** 2).mean(axis=0), x.min(axis=0), x.max(axis=0))

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Statistics of the union of both row sets (Chan et al.'s pairwise update)."""
        if other.shape != self.shape:
            raise ValueError(f"cannot merge statistics of shapes {self.shape} and {other.shape}")
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.var * self.count + other.var * other.count
        m2 = m2 + delta**2 * (self.count * other.count / n)
        return FeatureStats(
            n, mean, m2 / n, np.minimum(self.min, other.min), np.maximum(self.max, other.max)
        )

    def normalization(
        self,
        method: NormalizationMethod = "zscore",
        *,
        min_scale: float = MIN_SCALE,
        scale_floor: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, variance)`` for ``keras.layers.Normalization`` (module docstring).

        ``zscore``: ``(mean, std**2)``; ``minmax``: ``(min, (max - min)**2)``. A feature
        whose std (z-score) or range (min-max) is below ``min_scale`` gets variance 1;
        otherwise its scale is at least ``scale_floor`` (feature units), so a near-constant
        feature does not magnify small deviations by 1 / std.
        """
        if self.count == 0:
            raise ValueError("no rows were summarized: cannot normalize")
        if method == "zscore":
            center, scale = self.mean, self.std
        elif method == "minmax":
            center, scale = self.min, self.max - self.min
        else:
            raise ValueError(f"unknown normalization {method!r}; use 'zscore' or 'minmax'")
        scale = np.where(scale < min_scale, 1.0, np.maximum(scale, scale_floor))
        return center.copy(), scale**2

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (lists of floats; ``inf`` stays a float)."""
        return {
            "count": self.count,
            "shape": list(self.shape),
            **{name: getattr(self, name).ravel().tolist() for name in _ARRAYS},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureStats:
        """Inverse of :meth:`to_dict`."""
        shape = tuple(int(s) for s in data["shape"])
        arrays = {}
        size = int(np.prod(shape, dtype=np.int64))
        for name in _ARRAYS:
            flat = np.asarray(data[name], dtype=np.float64)
            if flat.size != size:
                raise ValueError(f"{name} has {flat.size} values; shape {shape} needs {size}")
            arrays[name] = flat.reshape(shape)
        return cls(count=int(data["count"]), **arrays)


@dataclass(frozen=True, eq=False)
class NormalizationStats:
    """Statistics of the training split: observations (those paired with an action) and
    actions, and which episodes they came from."""

    observations: FeatureStats
    """Over ``observations[:-1]`` of each episode (the T rows that pair with actions)."""
    actions: FeatureStats
    """Over the expert action labels."""
    episode_ids: tuple[int, ...] = field(default=())
    """Episodes summarized (the training split)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, e.g. to store next to a saved model."""
        return {
            "observations": self.observations.to_dict(),
            "actions": self.actions.to_dict(),
            "episode_ids": list(self.episode_ids),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormalizationStats:
        """Inverse of :meth:`to_dict`."""
        return cls(
            FeatureStats.from_dict(data["observations"]),
            FeatureStats.from_dict(data["actions"]),
            tuple(int(i) for i in data.get("episode_ids", ())),
        )


def _checked_block(block: np.ndarray, where: str) -> np.ndarray:
    # A file edited outside our writer (which rejects NaN/Inf) could hold them; one
    # would silently poison every statistic and then every training step.
    if not np.isfinite(block).all():
        raise DatasetError(f"{where} holds NaN or Inf values; the data cannot be normalized")
    return block


def compute_stats(
    source: Dataset | str | Path,
    episode_ids: Sequence[int],
    *,
    block_steps: int = 4096,
) -> NormalizationStats:
    """Streaming statistics of ``episode_ids`` (pass the training split only).

    ``source`` is an open :class:`Dataset` or a path. Reads ``block_steps`` rows at a time
    through h5py slices, so memory stays bounded. Raises ValueError for no episodes or a
    bad ``block_steps`` and a one-line :class:`DatasetError` for an unreadable file, an
    unknown episode or non-finite values.
    """
    if block_steps < 1:
        raise ValueError(f"block_steps must be >= 1, got {block_steps}")
    if len(episode_ids) == 0:
        raise ValueError("no episodes to compute statistics on")
    if isinstance(source, Dataset):
        return _compute(source, episode_ids, block_steps)
    with open_dataset(source) as ds:
        return _compute(ds, episode_ids, block_steps)


def _compute(ds: Dataset, episode_ids: Sequence[int], block_steps: int) -> NormalizationStats:
    obs_stats = FeatureStats.empty(ds.metadata.observation_space.shape)
    act_stats = FeatureStats.empty(ds.metadata.action_space.shape)
    for episode_id in episode_ids:
        try:
            view = ds.episode(int(episode_id))
        except KeyError as exc:
            raise DatasetError(str(exc.args[0])) from None
        obs, act = view.dataset(OBSERVATIONS), view.dataset(ACTIONS)
        where = f"{ds.path}: episode {episode_id}"
        steps = view.info.total_steps
        for start in range(0, steps, block_steps):
            stop = min(steps, start + block_steps)
            # Rows start..stop-1 only: the final observation pairs with no action.
            obs_block = _checked_block(obs[start:stop], f"{where} observations")
            act_block = _checked_block(act[start:stop], f"{where} actions")
            obs_stats = obs_stats.merge(FeatureStats.of(obs_block))
            act_stats = act_stats.merge(FeatureStats.of(act_block))
    return NormalizationStats(obs_stats, act_stats, tuple(int(i) for i in episode_ids))
