"""Training epochs in NumPy: (observation, action) samples streamed from the HDF5 file.

:func:`iter_groups` builds one epoch in a few vectorized operations per block and never
loads the file whole:

1. **Episode interleave.** The episodes are put in a random order; ``cycle_length`` of
   them are open at once and read in turn, ``block_steps`` rows per read (h5py slices),
   and a finished episode's slot goes to the next one (like ``Dataset.interleave``).
2. **Shuffle buffer** (``Dataset.shuffle`` semantics, vectorized). The first
   ``shuffle_buffer`` samples fill the buffer; after that each incoming sample takes the
   place of a uniformly chosen buffered one, which goes out. At the end of the epoch the
   buffer is emptied in random order, so every training step appears exactly once per
   epoch; only the last batch may be smaller (unless ``drop_remainder``).
3. **Augmentation** (training only), then float32 batches in raw units: normalization
   lives inside the Keras model.

Memory is bounded by the shuffle buffer, two output groups and ``cycle_length`` blocks,
whatever the size of the file.

**Determinism.** Epoch ``e`` draws its episode order and shuffling from
``np.random.SeedSequence([seed, e])`` and its augmentation from an independent child
stream of it, so the same seed and epoch always give the same batches, and turning
augmentation on does not change the order. Validation data (``training=False``) comes in
the given episode order, unshuffled and unaugmented.

**Cost** (measured on the 2-core machine). Reading gzip-compressed files is dominated by
decompression (~0.13 CPU-s per 100k HumanoidRun samples, ~0.45 for the walk); shuffling
and the rest add ~0.05-0.1. :class:`BlockCache` decompresses once and keeps the blocks.

``datasets.training.tfdata`` hands these epochs to TensorFlow; this module imports no
TensorFlow.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from datasets.store.errors import DatasetError
from datasets.store.reader import Dataset, open_dataset
from datasets.store.schema import ACTIONS, IMAGES, OBSERVATIONS
from datasets.training.augment import Augmenter, ImageAugmenter
from datasets.training.windows import check_history, lookback_start, windows_from_rows

Batch = tuple[np.ndarray, ...]
"""One group or batch of samples: ``(observations, actions)``, or with camera frames
``(observations, frames, actions)`` (frames as uint8, shape (N, H, W, 3) or (N, K, H, W, 3))."""


class BlockCache:
    """Blocks read from the file, kept in RAM across epochs up to a byte budget.

    Decompressing gzip costs more CPU than the rest of the pipeline together (on the
    2-core machine: ~0.13 CPU-s per 100k HumanoidRun samples, ~0.45 for HumanoidWalk,
    whose rows are 4x larger); when the data fits the budget, later epochs skip it. Blocks
    are kept first come, first served and never evicted, so what is cached is the same in
    every epoch; the rest streams. Shared safely between threads.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = int(budget_bytes)
        self.used_bytes = 0
        self.hits = 0
        self._blocks: dict[tuple[int, int, int], Batch] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, int]) -> Batch | None:
        block = self._blocks.get(key)
        if block is not None:
            self.hits += 1
        return block

    def put(self, key: tuple[int, int, int], block: Batch) -> None:
        size = sum(array.nbytes for array in block)
        with self._lock:
            if key not in self._blocks and self.used_bytes + size <= self.budget_bytes:
                for array in block:  # shared by later epochs: nobody may write to it
                    array.setflags(write=False)
                self._blocks[key] = block
                self.used_bytes += size


class _EpisodeCursor:
    """Reads one episode forward in blocks: (history windows or observations, [frames,]
    actions)."""

    def __init__(self, ds: Dataset, episode_id: int, history: int, cache: BlockCache | None,
                 images: bool) -> None:  # fmt: skip
        self._view = ds.episode(episode_id)
        self._where = f"{ds.path}: episode {episode_id}"
        self._steps = self._view.info.total_steps
        self._history, self._cache, self._images = history, cache, images
        self._arrays: tuple[h5py.Dataset, ...] | None = None
        self.position = 0

    @property
    def done(self) -> bool:
        return self.position >= self._steps

    def _read(self, first: int, start: int, stop: int) -> Batch:
        if self._arrays is None:
            # Keep the h5py datasets open: their chunk caches then keep the decompressed
            # chunk that a block boundary splits, so no chunk is decompressed twice.
            keys = (OBSERVATIONS, IMAGES) if self._images else (OBSERVATIONS,)
            self._arrays = (*(self._view.dataset(key) for key in keys), self._view.dataset(ACTIONS))
        rows, act = [array[first:stop] for array in self._arrays[:-1]], self._arrays[-1][start:stop]
        # Our writer never stores NaN/Inf, but a file changed by other tools could, and
        # one NaN would silently turn every later weight into NaN.
        if not (np.isfinite(rows[0]).all() and np.isfinite(act).all()):
            raise DatasetError(f"{self._where} holds NaN or Inf values near step {start}")
        return (*rows, act)

    def read(self, max_steps: int) -> Batch:
        start, stop = self.position, min(self._steps, self.position + max_steps)
        first = lookback_start(start, self._history)
        key = (self._view.id, first, stop)
        block = self._cache.get(key) if self._cache is not None else None
        if block is None:
            block = self._read(first, start, stop)
            if self._cache is not None:
                self._cache.put(key, block)
        self.position = stop
        *rows, act = block
        return (*(windows_from_rows(r, start - first, self._history) for r in rows), act)


def _interleaved_blocks(
    ds: Dataset,
    order: Sequence[int],
    history: int,
    block_steps: int,
    cycle_length: int,
    cache: BlockCache | None,
    images: bool,
) -> Iterator[Batch]:
    pending = iter(order)

    def open_next() -> _EpisodeCursor | None:
        episode_id = next(pending, None)
        if episode_id is None:
            return None
        return _EpisodeCursor(ds, int(episode_id), history, cache, images)

    slots = [open_next() for _ in range(cycle_length)]
    while any(slot is not None for slot in slots):
        for i, cursor in enumerate(slots):
            if cursor is None:
                continue
            yield cursor.read(block_steps)
            if cursor.done:
                slots[i] = open_next()


class _Groups:
    """Fills fixed-size output groups (``rows`` samples each) piece by piece; one array per
    field of a sample (observations, [frames,] actions), each with its shape and dtype."""

    def __init__(self, rows: int, fields: Sequence[tuple[tuple[int, ...], Any]]) -> None:
        self._rows, self._fields = rows, list(fields)
        self._new()

    def _new(self) -> None:
        self.arrays = [np.empty((self._rows, *shape), dtype=dtype) for shape, dtype in self._fields]
        self.filled = 0

    @property
    def room(self) -> int:
        return self._rows - self.filled

    def target(self, n: int) -> Batch:
        """Views of the next ``n`` free rows (the caller writes them)."""
        span = slice(self.filled, self.filled + n)
        self.filled += n
        return tuple(array[span] for array in self.arrays)

    def pop(self) -> Batch:
        """The filled part of the current group; a new group starts."""
        group = tuple(array[: self.filled] for array in self.arrays)
        self._new()
        return group


def _take(sources: Batch, index: np.ndarray, targets: Batch) -> None:
    for source, target in zip(sources, targets, strict=True):
        # mode="clip" lets np.take write straight into ``out`` (indices are valid).
        np.take(source, index, axis=0, out=target, mode="clip")


def _shuffled_groups(
    blocks: Iterator[Batch], capacity: int, groups: _Groups, rng: np.random.Generator
) -> Iterator[Batch]:
    """``Dataset.shuffle`` semantics, vectorized: each incoming sample replaces a random
    sample of the full buffer, which goes out; the rest leaves in random order at the end.

    Per sample that is one gather (into the output group) and one scatter (into the
    buffer), the least copying a shuffle buffer can do.
    """
    buffer: Batch | None = None
    size = 0
    for block in blocks:
        if buffer is None:
            buffer = tuple(np.empty((capacity, *a.shape[1:]), dtype=g.dtype)
                           for a, g in zip(block, groups.arrays, strict=True))  # fmt: skip
        count = len(block[0])
        fill = min(capacity - size, count)
        for buf, array in zip(buffer, block, strict=True):
            buf[size : size + fill] = array[:fill]
        size += fill
        start = fill
        while start < count:
            n = min(count - start, groups.room)
            slots = rng.choice(capacity, size=n, replace=False)
            _take(buffer, slots, groups.target(n))
            for buf, array in zip(buffer, block, strict=True):
                buf[slots] = array[start : start + n]
            start += n
            if not groups.room:
                yield groups.pop()
    order = rng.permutation(size)
    while len(order):
        n = min(len(order), groups.room)
        assert buffer is not None
        _take(buffer, order[:n], groups.target(n))
        order = order[n:]
        if not groups.room:
            yield groups.pop()
    if groups.filled:
        yield groups.pop()


def _ordered_groups(blocks: Iterator[Batch], groups: _Groups) -> Iterator[Batch]:
    for block in blocks:
        start, count = 0, len(block[0])
        while start < count:
            n = min(count - start, groups.room)
            for out, array in zip(groups.target(n), block, strict=True):
                out[...] = array[start : start + n]
            start += n
            if not groups.room:
                yield groups.pop()
    if groups.filled:
        yield groups.pop()


def _check_ids(ds: Dataset, episode_ids: Sequence[int]) -> list[int]:
    ids = [int(i) for i in episode_ids]
    if not ids:
        raise ValueError("no episodes given")
    known = set(ds.episode_ids())
    missing = [i for i in ids if i not in known]
    if missing:
        raise DatasetError(f"{ds.path}: no episode {missing[0]} (it has {len(known)})")
    if len(set(ids)) != len(ids):
        raise ValueError("episode ids must be unique")
    return ids


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_settings(
    ds: Dataset,
    episode_ids: Sequence[int],
    *,
    augmenter: Augmenter | None,
    training: bool,
    history: int,
    images: bool = False,
    image_augmenter: ImageAugmenter | None = None,
    **positive: int,
) -> list[int]:
    """The episode ids as ints, after checking every setting against the file."""
    check_positive(**positive)
    check_history(history)
    ids = _check_ids(ds, episode_ids)
    if (augmenter is not None or image_augmenter is not None) and not training:
        raise ValueError("augmentation is for the training split only (training=False)")
    if augmenter is not None:
        augmenter.check(ds.metadata.observation_space.shape[-1], ds.metadata.action_space.shape[-1])
        if images and augmenter.mirror is not None:
            raise ValueError("mirroring is defined for state observations, not camera frames")
    if (images or image_augmenter is not None) and ds.metadata.camera is None:
        raise DatasetError(f"{ds.path}: the file has no camera frames (record with --camera)")
    if image_augmenter is not None and not images:
        raise ValueError("an image augmenter needs images=True")
    return ids


_GROUP_BATCHES = 8
"""Batches per group: groups are the unit of output, augmentation and the hand-over to
TensorFlow, whose ``from_generator`` costs about 0.5 ms of CPU per call (measured here),
as much as reading and shuffling a 256-sample batch."""


def iter_groups(
    ds: Dataset,
    episode_ids: Sequence[int],
    *,
    batch_size: int,
    seed: int = 0,
    epoch: int = 0,
    shuffle_buffer: int = 16384,
    history: int = 1,
    augmenter: Augmenter | None = None,
    training: bool = True,
    block_steps: int = 256,
    cycle_length: int = 4,
    drop_remainder: bool = False,
    cache: BlockCache | None = None,
    images: bool = False,
    image_augmenter: ImageAugmenter | None = None,
) -> Iterator[Batch]:
    """One epoch as ``(obs, act)`` groups of ``8 * batch_size`` samples (the last one
    shorter), ready to be cut into batches (module docstring for the steps); with
    ``images`` as ``(obs, frames, act)``, the camera frames (windows) as uint8.

    ``shuffle_buffer`` is in samples (with frames, each holds its frames: 21 KB per 84x84
    frame). With ``training=False`` episodes are read in the given order, unshuffled;
    augmenters are then refused: validation data must not be augmented.
    ``drop_remainder`` drops the last batch if it is short. ``cache`` keeps blocks read in
    RAM for later epochs (same batches, less CPU). Observations and actions are float32.
    """
    ids = check_settings(ds, episode_ids, batch_size=batch_size, shuffle_buffer=shuffle_buffer,
                         history=history, augmenter=augmenter, training=training, images=images,
                         image_augmenter=image_augmenter, block_steps=block_steps,
                         cycle_length=cycle_length)  # fmt: skip
    window = () if history == 1 else (history,)
    fields = [((*window, *ds.metadata.observation_space.shape), np.float32)]
    if images:
        fields.append(((*window, *ds.metadata.camera.frame_shape), np.uint8))  # type: ignore[union-attr]
    fields.append((tuple(ds.metadata.action_space.shape), np.float32))
    groups = _Groups(_GROUP_BATCHES * batch_size, fields)
    order_seq, augment_seq = np.random.SeedSequence([seed, epoch]).spawn(2)
    order_rng, augment_rng = np.random.default_rng(order_seq), np.random.default_rng(augment_seq)
    # Frames draw from a stream of their own, so turning them on changes nothing else.
    image_rng = np.random.default_rng(augment_seq.spawn(1)[0])
    if training:
        order = order_rng.permutation(ids).tolist()
        blocks = _interleaved_blocks(ds, order, history, block_steps, cycle_length, cache, images)
        output = _shuffled_groups(blocks, shuffle_buffer, groups, order_rng)
    else:
        blocks = _interleaved_blocks(ds, ids, history, block_steps, 1, cache, images)
        output = _ordered_groups(blocks, groups)
    for group in output:
        if drop_remainder:
            keep = len(group[0]) - len(group[0]) % batch_size
            if not keep:
                return
            group = tuple(array[:keep] for array in group)
        obs, *frames, act = group
        if augmenter is not None and augmenter.active:
            obs, act = augmenter(obs, act, augment_rng)
            obs, act = np.asarray(obs, np.float32), np.asarray(act, np.float32)
        if frames and image_augmenter is not None and image_augmenter.active:
            frames = [image_augmenter(frames[0], image_rng)]
        yield (obs, *frames, act)


def iter_batches(ds: Dataset, episode_ids: Sequence[int], **settings: Any) -> Iterator[Batch]:
    """One epoch of NumPy batches, ``(obs, act)`` or ``(obs, frames, act)``; ``settings``
    as for :func:`iter_groups` (``batch_size`` is required). Only the last batch may be
    short."""
    batch_size = settings["batch_size"]
    for group in iter_groups(ds, episode_ids, **settings):
        for start in range(0, len(group[0]), batch_size):
            yield tuple(array[start : start + batch_size] for array in group)


def count_steps(source: Dataset | str | Path, episode_ids: Sequence[int]) -> int:
    """Number of (observation, action) samples in ``episode_ids`` (reads attributes only)."""
    if not isinstance(source, Dataset):
        with open_dataset(source) as ds:
            return count_steps(ds, episode_ids)
    return sum(source.episode(i).info.total_steps for i in _check_ids(source, episode_ids))


def batches_per_epoch(
    source: Dataset | str | Path,
    episode_ids: Sequence[int],
    batch_size: int,
    *,
    drop_remainder: bool = False,
) -> int:
    """Batches one epoch yields: ``ceil(steps / batch_size)`` (floor with drop_remainder)."""
    check_positive(batch_size=batch_size)
    steps = count_steps(source, episode_ids)
    return steps // batch_size if drop_remainder else math.ceil(steps / batch_size)


def in_memory_dataset(
    path: str | Path, episode_ids: Sequence[int], *, history: int = 1, images: bool = False
) -> Batch:
    """All samples of ``episode_ids`` as ``(x, y)`` float32 arrays (``(x, frames, y)`` with
    ``images``, frames uint8), in episode order.

    The same samples and windows as the streaming pipeline, fully loaded: for small data
    and for the streaming-versus-in-memory benchmark.
    """
    history = check_history(history)
    keys = (OBSERVATIONS, IMAGES, ACTIONS) if images else (OBSERVATIONS, ACTIONS)
    parts: list[list[np.ndarray]] = [[] for _ in keys]
    with open_dataset(path) as ds:
        if images and ds.metadata.camera is None:
            raise DatasetError(f"{ds.path}: the file has no camera frames (record with --camera)")
        for episode_id in _check_ids(ds, episode_ids):
            view = ds.episode(episode_id)
            steps = view.info.total_steps
            for part, key in zip(parts, keys, strict=True):
                rows = view.dataset(key)[:steps]
                part.append(rows if key == ACTIONS else windows_from_rows(rows, 0, history))
    arrays = [np.concatenate(part) for part in parts]
    return tuple(a if a.dtype == np.uint8 else a.astype(np.float32) for a in arrays)
