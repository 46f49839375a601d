"""Checking and converting an in-memory :class:`Episode` before it is written.

:func:`prepare_arrays` gives the arrays to store and :func:`episode_attrs` the episode
group's attributes.

Two kinds of problems, treated differently:

- wrong structure (shapes, lengths, dtypes that cannot be converted, a bad seed) is a
  bug in the caller: :func:`prepare_arrays` raises :class:`InvalidEpisodeError`;
- NaN or Inf values are a property of the data (a simulation that blew up): the writer
  rejects the episode, logs its attempt as dropped and counts it, and recording goes on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datasets.store.checksum import episode_checksum
from datasets.store.errors import InvalidEpisodeError
from datasets.store.schema import (
    ACTIONS,
    EXECUTED_ACTIONS,
    IMAGES,
    INFOS,
    OBSERVATIONS,
    REWARDS,
    STORAGE_DTYPES,
    TERMINATIONS,
    TRUNCATIONS,
    DatasetMetadata,
    Episode,
)

_INT64 = np.iinfo(np.int64)


def check_seed(seed: object, where: str) -> int:
    """The seed as an int that fits the file's int64 attribute."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InvalidEpisodeError(f"{where}: seed must be an integer, got {seed!r}")
    if not _INT64.min <= int(seed) <= _INT64.max:
        raise InvalidEpisodeError(f"{where}: seed {seed} does not fit in int64")
    return int(seed)


def _convert(name: str, value: object, dtype: np.dtype, shape: tuple[int, ...], where: str):
    array = np.asarray(value)
    if array.shape != shape:
        raise InvalidEpisodeError(f"{where}: {name} has shape {array.shape}, expected {shape}")
    if array.dtype.kind not in "biuf":
        raise InvalidEpisodeError(f"{where}: {name} has dtype {array.dtype}, not a number")
    if dtype == np.bool_ and array.dtype != np.bool_ and not np.isin(array, (0, 1)).all():
        raise InvalidEpisodeError(f"{where}: {name} must hold only 0/1 or booleans")
    # Values too large for float32 become Inf here; the NaN/Inf check rejects them after.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(array, dtype=dtype)


def prepare_arrays(episode: Episode, meta: DatasetMetadata, where: str) -> dict[str, np.ndarray]:
    """Check shapes against the spaces and convert to storage dtypes.

    Returns the arrays keyed as in the file (``infos/<key>`` for infos), without the
    optional ``executed_actions`` when the episode has none.
    """
    steps = len(np.asarray(episode.actions))
    if steps < 1:
        raise InvalidEpisodeError(f"{where}: episode has no actions")
    obs_shape, act_shape = meta.observation_space.shape, meta.action_space.shape
    expected = {
        OBSERVATIONS: (steps + 1, *obs_shape),
        ACTIONS: (steps, *act_shape),
        EXECUTED_ACTIONS: (steps, *act_shape),
        REWARDS: (steps,),
        TERMINATIONS: (steps,),
        TRUNCATIONS: (steps,),
    }
    arrays = {}
    for key, shape in expected.items():
        value = getattr(episode, key)
        if value is None and key == EXECUTED_ACTIONS:
            continue
        arrays[key] = _convert(key, value, STORAGE_DTYPES[key], shape, where)
    for key, value in episode.infos.items():
        if not key or "/" in key:
            raise InvalidEpisodeError(f"{where}: info key {key!r} must be non-empty, no '/'")
        array = np.asarray(value)
        if array.shape[:1] != (steps,) or array.dtype.kind not in "biuf":
            raise InvalidEpisodeError(
                f"{where}: infos[{key!r}] must be a numeric array of {steps} rows, "
                f"got shape {array.shape} dtype {array.dtype}"
            )
        arrays[f"{INFOS}/{key}"] = np.ascontiguousarray(array)
    images = _images(episode, meta, steps, where)
    if images is not None:
        arrays[IMAGES] = images
    return arrays


def _images(episode: Episode, meta: DatasetMetadata, steps: int, where: str) -> np.ndarray | None:
    """The episode's frames checked against the file's camera (both present or neither)."""
    if meta.camera is None:
        if episode.images is not None:
            raise InvalidEpisodeError(f"{where}: episode has images but the file has no camera")
        return None
    if episode.images is None:
        raise InvalidEpisodeError(f"{where}: the file's camera needs images in every episode")
    images = np.asarray(episode.images)
    shape = (steps + 1, *meta.camera.frame_shape)
    if images.shape != shape or images.dtype != np.uint8:
        raise InvalidEpisodeError(f"{where}: images have shape {images.shape} dtype "
                                  f"{images.dtype}, expected {shape} uint8")  # fmt: skip
    return np.ascontiguousarray(images)


def non_finite_report(arrays: dict[str, np.ndarray]) -> str | None:
    """None if every float array is finite, else e.g. ``actions (2 NaN), rewards (1 Inf)``."""
    problems = []
    for key, array in arrays.items():
        if array.dtype.kind != "f":
            continue
        nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
        if nan or inf:
            counts = [f"{n} {label}" for n, label in ((nan, "NaN"), (inf, "Inf")) if n]
            problems.append(f"{key} ({', '.join(counts)})")
    return ", ".join(problems) if problems else None


def episode_attrs(
    episode: Episode,
    arrays: dict[str, np.ndarray],
    *,
    episode_id: int,
    seed: int,
    attempt: int,
    session: int,
) -> dict[str, Any]:
    """The episode group's attributes, for the arrays :func:`prepare_arrays` returned."""
    # Unless the caller says otherwise, an episode that ends in a termination fell.
    fell = bool(arrays["terminations"][-1]) if episode.fell is None else bool(episode.fell)
    return {
        "id": episode_id,
        "seed": seed,
        "attempt": attempt,
        "session": session,
        "total_steps": len(arrays["actions"]),
        "return": float(np.sum(arrays["rewards"])),
        "fell": fell,
        "distance": float(episode.distance),
        "checksum": episode_checksum(arrays),
    }
