"""The ``tf.data`` input pipeline: (observation, action) batches streamed from the HDF5 file.

Training epochs are built in NumPy by :func:`iter_batches` and handed to TensorFlow one
batch at a time (``tf.data.Dataset.from_generator`` plus ``prefetch``), so the Python
work per sample is a few vectorized operations and the file is never loaded whole:

1. **Episode interleave.** The episodes are put in a random order; ``cycle_length`` of
   them are open at once and read in turn, ``block_steps`` rows per read (h5py slices),
   and a finished episode's slot goes to the next one (like ``Dataset.interleave``).
2. **Shuffle buffer.** Blocks go into a buffer of ``shuffle_buffer`` samples; each batch
   is ``batch_size`` samples drawn from it at random without replacement, and the next
   blocks refill it (``Dataset.shuffle`` semantics, a batch at a time). At the end of
   the epoch the buffer is drained, so every training step appears exactly once per
   epoch; only the last batch may be smaller (unless ``drop_remainder``).
3. **Augmentation** (training only) on each batch, then ``float32``.

Memory is bounded by the shuffle buffer plus ``cycle_length`` blocks, whatever the size
of the file. Batches are in raw units: normalization lives inside the Keras model.

**Determinism.** Epoch ``e`` draws its episode order and shuffling from
``np.random.SeedSequence([seed, e])`` and its augmentation from an independent child
stream of it, so the same seed and epoch always give the same batches, and turning
augmentation on does not change the order. Each new iteration over the dataset returned
by :func:`make_tf_dataset` is the next epoch (like ``shuffle(reshuffle_each_iteration=
True)``), so ``model.fit(ds, epochs=n)`` reshuffles every epoch; start at ``epoch=k`` to
resume at epoch ``k``. Validation data (``training=False``) comes in file order,
unshuffled and unaugmented.

TensorFlow is imported only when a ``tf.data`` dataset is built, so importing
``datasets`` stays cheap for simulation workers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from datasets.augment import Augmenter
from datasets.errors import DatasetError
from datasets.reader import Dataset, open_dataset
from datasets.schema import ACTIONS, OBSERVATIONS
from datasets.windows import check_history, lookback_start, windows_from_rows

if TYPE_CHECKING:
    import tensorflow as tf

Batch = tuple[np.ndarray, np.ndarray]


class _EpisodeCursor:
    """Reads one episode forward in blocks: (history windows or observations, actions)."""

    def __init__(self, ds: Dataset, episode_id: int, history: int) -> None:
        view = ds.episode(episode_id)
        self._where = f"{ds.path}: episode {episode_id}"
        # Keep the h5py datasets open: their chunk caches then serve the compressed chunk
        # a block boundary splits, instead of decompressing it twice.
        self._obs: h5py.Dataset = view.dataset(OBSERVATIONS)
        self._act: h5py.Dataset = view.dataset(ACTIONS)
        self._steps = view.info.total_steps
        self._history = history
        self.position = 0

    @property
    def done(self) -> bool:
        return self.position >= self._steps

    def read(self, max_steps: int) -> Batch:
        start, stop = self.position, min(self._steps, self.position + max_steps)
        first = lookback_start(start, self._history)
        rows, act = self._obs[first:stop], self._act[start:stop]
        # Our writer never stores NaN/Inf, but a file changed by other tools could, and
        # one NaN would silently turn every later weight into NaN.
        if not (np.isfinite(rows).all() and np.isfinite(act).all()):
            raise DatasetError(f"{self._where} holds NaN or Inf values near step {start}")
        self.position = stop
        return windows_from_rows(rows, start - first, self._history), act


def _interleaved_blocks(
    ds: Dataset, order: Sequence[int], history: int, block_steps: int, cycle_length: int
) -> Iterator[Batch]:
    pending = iter(order)

    def open_next() -> _EpisodeCursor | None:
        episode_id = next(pending, None)
        return None if episode_id is None else _EpisodeCursor(ds, int(episode_id), history)

    slots = [open_next() for _ in range(cycle_length)]
    while any(slot is not None for slot in slots):
        for i, cursor in enumerate(slots):
            if cursor is None:
                continue
            yield cursor.read(block_steps)
            if cursor.done:
                slots[i] = open_next()


class _ShuffleBuffer:
    """Fixed-capacity sample buffer; batches are random subsets, removed by swapping."""

    def __init__(self, capacity: int, slack: int, obs_shape: tuple, act_shape: tuple) -> None:
        self.capacity = capacity
        self.size = 0
        # ``slack`` rows beyond the capacity take the block that crosses it.
        self._obs = np.empty((capacity + slack, *obs_shape), dtype=np.float32)
        self._act = np.empty((capacity + slack, *act_shape), dtype=np.float32)

    def add(self, obs: np.ndarray, act: np.ndarray) -> None:
        n = len(obs)
        self._obs[self.size : self.size + n] = obs
        self._act[self.size : self.size + n] = act
        self.size += n

    def take(self, count: int, rng: np.random.Generator) -> Batch:
        count = min(count, self.size)
        picked = rng.choice(self.size, size=count, replace=False)
        batch = self._obs[picked], self._act[picked]
        # Fill the holes below the new size with the unpicked rows above it.
        new_size = self.size - count
        tail = np.ones(count, dtype=bool)
        tail[picked[picked >= new_size] - new_size] = False
        holes = picked[picked < new_size]
        movers = new_size + np.flatnonzero(tail)
        self._obs[holes] = self._obs[movers]
        self._act[holes] = self._act[movers]
        self.size = new_size
        return batch


def _shuffled_batches(
    blocks: Iterator[Batch], buffer: _ShuffleBuffer, batch_size: int, rng: np.random.Generator
) -> Iterator[Batch]:
    for obs, act in blocks:
        buffer.add(obs, act)
        while buffer.size >= buffer.capacity:
            yield buffer.take(batch_size, rng)
    while buffer.size:
        yield buffer.take(batch_size, rng)


def _ordered_batches(blocks: Iterator[Batch], batch_size: int) -> Iterator[Batch]:
    parts: list[Batch] = []
    filled = 0
    for obs, act in blocks:
        parts.append((obs, act))
        filled += len(obs)
        while filled >= batch_size:
            obs_all = np.concatenate([p[0] for p in parts])
            act_all = np.concatenate([p[1] for p in parts])
            yield obs_all[:batch_size], act_all[:batch_size]
            parts = [(obs_all[batch_size:], act_all[batch_size:])]
            filled -= batch_size
    if filled:
        yield np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


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


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_settings(
    ds: Dataset,
    episode_ids: Sequence[int],
    *,
    augmenter: Augmenter | None,
    training: bool,
    history: int,
    **positive: int,
) -> list[int]:
    """The episode ids as ints, after checking every setting against the file."""
    _check_positive(**positive)
    check_history(history)
    ids = _check_ids(ds, episode_ids)
    if augmenter is not None:
        if not training:
            raise ValueError("augmentation is for the training split only (training=False)")
        augmenter.check(ds.metadata.observation_space.shape[-1], ds.metadata.action_space.shape[-1])
    return ids


def iter_batches(
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
) -> Iterator[Batch]:
    """One epoch of ``(obs, act)`` float32 NumPy batches (module docstring for the steps).

    ``shuffle_buffer`` is in samples (raised to ``batch_size`` if smaller). With
    ``training=False`` episodes are read in the given order, unshuffled; an augmenter is
    then refused, since validation data must not be augmented.
    """
    ids = _check_settings(ds, episode_ids, batch_size=batch_size, shuffle_buffer=shuffle_buffer,
                          history=history, augmenter=augmenter, training=training,
                          block_steps=block_steps, cycle_length=cycle_length)  # fmt: skip
    obs_shape = ds.metadata.observation_space.shape
    act_shape = ds.metadata.action_space.shape
    order_seq, augment_seq = np.random.SeedSequence([seed, epoch]).spawn(2)
    order_rng, augment_rng = np.random.default_rng(order_seq), np.random.default_rng(augment_seq)
    if training:
        order = order_rng.permutation(ids).tolist()
        blocks = _interleaved_blocks(ds, order, history, block_steps, cycle_length)
        window_shape = obs_shape if history == 1 else (history, *obs_shape)
        buffer = _ShuffleBuffer(max(shuffle_buffer, batch_size), block_steps, window_shape,
                                act_shape)  # fmt: skip
        batches = _shuffled_batches(blocks, buffer, batch_size, order_rng)
    else:
        blocks = _interleaved_blocks(ds, ids, history, block_steps, cycle_length=1)
        batches = _ordered_batches(blocks, batch_size)
    for obs, act in batches:
        if drop_remainder and len(obs) < batch_size:
            break
        if augmenter is not None and augmenter.active:
            obs, act = augmenter(obs, act, augment_rng)
        yield np.ascontiguousarray(obs, np.float32), np.ascontiguousarray(act, np.float32)


_STACK = 8
"""Batches per Python-to-TensorFlow hand-over: each ``from_generator`` call costs about
0.5 ms of CPU (measured here), as much as reading and shuffling a 256-sample batch."""


def _stacked(batches: Iterator[Batch], batch_size: int) -> Iterator[Batch]:
    """Groups of up to ``_STACK`` full batches as ``(g, batch_size, ...)`` arrays; a short
    batch goes alone as ``(1, n, ...)``. ``Dataset.unbatch`` splits them up again."""
    group: list[Batch] = []
    for batch in batches:
        if len(batch[0]) == batch_size:
            group.append(batch)
        if group and (len(group) == _STACK or len(batch[0]) < batch_size):
            yield np.stack([b[0] for b in group]), np.stack([b[1] for b in group])
            group = []
        if len(batch[0]) < batch_size:
            yield batch[0][None], batch[1][None]
    if group:
        yield np.stack([b[0] for b in group]), np.stack([b[1] for b in group])


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
    _check_positive(batch_size=batch_size)
    steps = count_steps(source, episode_ids)
    return steps // batch_size if drop_remainder else math.ceil(steps / batch_size)


def make_tf_dataset(
    path: str | Path,
    episode_ids: Sequence[int],
    *,
    batch_size: int,
    shuffle_buffer: int = 16384,
    seed: int = 0,
    history: int = 1,
    augmenter: Augmenter | None = None,
    training: bool = True,
    block_steps: int = 256,
    cycle_length: int = 4,
    epoch: int = 0,
    epochs: int | None = 1,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(obs, act)`` float32 batches streamed from ``path``.

    Each iteration over it yields ``epochs`` epochs (``None``: endlessly; then give
    ``model.fit`` a ``steps_per_epoch`` from :func:`batches_per_epoch`); iteration ``i``
    starts at epoch ``epoch + i * epochs``. Observations are ``(B, *obs_shape)`` for
    ``history == 1`` and ``(B, history, *obs_shape)`` otherwise. Arguments are checked
    (and the file opened) here, so mistakes raise before training starts.
    """
    import tensorflow as tf

    if epochs is not None:
        _check_positive(epochs=epochs)
    settings = dict(batch_size=batch_size, seed=seed, shuffle_buffer=shuffle_buffer,
                    history=history, augmenter=augmenter, training=training,
                    block_steps=block_steps, cycle_length=cycle_length,
                    drop_remainder=drop_remainder)  # fmt: skip
    with open_dataset(path) as ds:
        ids = _check_settings(ds, episode_ids, batch_size=batch_size,
                              shuffle_buffer=shuffle_buffer, history=history,
                              augmenter=augmenter, training=training, block_steps=block_steps,
                              cycle_length=cycle_length)  # fmt: skip
        obs_shape = ds.metadata.observation_space.shape
        act_shape = ds.metadata.action_space.shape
        per_epoch = batches_per_epoch(ds, ids, batch_size, drop_remainder=drop_remainder)
    window = () if history == 1 else (history,)
    iterations = itertools.count()

    def generate() -> Iterator[Batch]:
        first = epoch + next(iterations) * (epochs or 0)
        last = None if epochs is None else first + epochs
        with open_dataset(path) as ds:
            for e in itertools.count(first) if last is None else range(first, last):
                yield from _stacked(iter_batches(ds, ids, epoch=e, **settings), batch_size)

    signature = (
        tf.TensorSpec((None, None, *window, *obs_shape), tf.float32),
        tf.TensorSpec((None, None, *act_shape), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    # Prefetch whole groups too: behind ``unbatch`` alone the generator ran only when the
    # batch buffer was nearly empty, and its time showed up in the training step's.
    dataset = dataset.prefetch(2).unbatch()
    total = tf.data.INFINITE_CARDINALITY if epochs is None else per_epoch * epochs
    # Known cardinality lets Keras size its progress bar and checks our batch count.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(total))
    return dataset.prefetch(tf.data.AUTOTUNE)


def in_memory_dataset(
    path: str | Path, episode_ids: Sequence[int], *, history: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """All samples of ``episode_ids`` as float32 ``(x, y)`` arrays, in episode order.

    The same samples and windows as the streaming pipeline, fully loaded: for small data
    and for the streaming-versus-in-memory benchmark.
    """
    history = check_history(history)
    xs, ys = [], []
    with open_dataset(path) as ds:
        for episode_id in _check_ids(ds, episode_ids):
            view = ds.episode(episode_id)
            steps = view.info.total_steps
            xs.append(windows_from_rows(view.dataset(OBSERVATIONS)[:steps], 0, history))
            ys.append(view.dataset(ACTIONS)[:steps])
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)
