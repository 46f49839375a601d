"""History windows and the streaming input pipeline.

Synthetic files make the bookkeeping exact: observation ``t`` of episode ``e`` starts with
``(e, t)`` and its action is ``(e, t)``, so every sample says where it came from.
"""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from datasets import DatasetError, DatasetMetadata, Episode, EpisodeWriter, SpaceSpec, open_dataset
from datasets.training.augment import Augmenter
from datasets.training.epochs import (
    BlockCache,
    batches_per_epoch,
    count_steps,
    in_memory_dataset,
    iter_batches,
)
from datasets.training.windows import history_windows, windows_from_rows
from sim.mirror import mirror_spec

LENGTHS = [300, 57, 1000, 1, 433, 260, 90]


def write_synthetic(path: Path, lengths: list[int], obs_dim: int = 6, **kw) -> Path:
    """Episode e, step t: observation (e, t, noise...), action (e, t)."""
    meta = DatasetMetadata(
        env_id="test/Synthetic-v0",
        observation_space=SpaceSpec.unbounded((obs_dim,)),
        action_space=SpaceSpec.unbounded((2,)),
    )
    rng = np.random.default_rng(0)
    with EpisodeWriter.create(path, meta, durable=False, **kw) as writer:
        for e, steps in enumerate(lengths):
            obs = rng.standard_normal((steps + 1, obs_dim)).astype(np.float32)
            obs[:, 0], obs[:, 1] = e, np.arange(steps + 1)
            truncations = np.zeros(steps, dtype=bool)
            truncations[-1] = True
            writer.commit(
                Episode(
                    observations=obs,
                    actions=np.stack([np.full(steps, e), np.arange(steps)], axis=1),
                    rewards=np.zeros(steps),
                    terminations=np.zeros(steps, dtype=bool),
                    truncations=truncations,
                    seed=e,
                )
            )
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("tfdata") / "synthetic.h5", LENGTHS,
                           compression="gzip")  # fmt: skip


@pytest.fixture(scope="module")
def ids(synthetic: Path) -> list[int]:
    with open_dataset(synthetic) as ds:
        return ds.episode_ids()


def keys(act: np.ndarray) -> list[tuple[int, int]]:
    return [(int(e), int(t)) for e, t in act]


def epoch_batches(path: Path, ids: list[int], **kw) -> list[tuple[np.ndarray, np.ndarray]]:
    settings = {"batch_size": 64, "shuffle_buffer": 500, "block_steps": 50, "cycle_length": 3}
    with open_dataset(path) as ds:
        return list(iter_batches(ds, ids, **{**settings, **kw}))


ALL_KEYS = sorted((e, t) for e, steps in enumerate(LENGTHS) for t in range(steps))


# --------------------------------------------------------------------------- windows
def test_windows_never_cross_episodes() -> None:
    first = np.full((5, 3), 1.0)
    second = np.full((4, 3), 2.0)
    windows = np.concatenate([history_windows(first, 3), history_windows(second, 3)])
    assert windows.shape == (9, 3, 3)
    assert np.all(windows[:5] == 1.0) and np.all(windows[5:] == 2.0)


def test_windows_pad_by_repeating_the_first_observation() -> None:
    obs = np.arange(5.0)[:, None] * [1.0, 10.0]
    windows = history_windows(obs, 3)
    np.testing.assert_array_equal(windows[:, :, 0], [[0, 0, 0], [0, 0, 1], [0, 1, 2],
                                                     [1, 2, 3], [2, 3, 4]])  # fmt: skip
    assert history_windows(obs, 1) is not None and history_windows(obs, 1).shape == (5, 2)
    # A block that starts mid-episode with enough look-back rows equals the whole-episode view.
    np.testing.assert_array_equal(windows_from_rows(obs[1:], 2, 3), windows[3:])
    with pytest.raises(ValueError, match="history must be an integer >= 1"):
        history_windows(obs, 0)


# ------------------------------------------------------------------ numpy batch stream
def test_each_training_step_appears_once_per_epoch(synthetic: Path, ids: list[int]) -> None:
    batches = epoch_batches(synthetic, ids, seed=0)
    seen = [k for _, act in batches for k in keys(act)]
    assert sorted(seen) == ALL_KEYS  # each exactly once
    for obs, act in batches:  # observations still travel with their own action
        np.testing.assert_array_equal(obs[:, :2], act)
        assert obs.dtype == act.dtype == np.float32
    assert [len(a) for _, a in batches[:-1]] == [64] * (len(batches) - 1)
    assert len(batches) == batches_per_epoch(synthetic, ids, 64) == -(-len(ALL_KEYS) // 64)
    assert count_steps(synthetic, ids) == len(ALL_KEYS)
    dropped = epoch_batches(synthetic, ids, seed=0, drop_remainder=True)
    assert len(dropped) == batches_per_epoch(synthetic, ids, 64, drop_remainder=True)
    assert all(len(a) == 64 for _, a in dropped)


def test_batches_mix_episodes_and_are_deterministic(synthetic: Path, ids: list[int]) -> None:
    first = epoch_batches(synthetic, ids, seed=0, epoch=0)
    assert len({e for e, _ in keys(first[0][1])}) >= 2  # interleave + shuffle buffer
    same = epoch_batches(synthetic, ids, seed=0, epoch=0)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, same, strict=True))
    order = [keys(a) for _, a in first]
    assert order != [keys(a) for _, a in epoch_batches(synthetic, ids, seed=0, epoch=1)]
    assert order != [keys(a) for _, a in epoch_batches(synthetic, ids, seed=1, epoch=0)]


def test_validation_order_is_file_order(synthetic: Path, ids: list[int]) -> None:
    batches = epoch_batches(synthetic, ids[::-1], training=False)
    seen = [k for _, act in batches for k in keys(act)]
    assert seen == sorted(ALL_KEYS, key=lambda k: (-k[0], k[1]))  # given episode order


@pytest.mark.parametrize("history", [1, 4])
def test_streamed_windows_match_in_memory(synthetic: Path, ids: list[int], history: int) -> None:
    x, y = in_memory_dataset(synthetic, ids, history=history)
    assert x.shape == ((len(ALL_KEYS), 6) if history == 1 else (len(ALL_KEYS), history, 6))
    streamed = {k: obs for o, a in epoch_batches(synthetic, ids, history=history)
                for k, obs in zip(keys(a), o, strict=True)}  # fmt: skip
    for k, obs in zip(keys(y), x, strict=True):
        np.testing.assert_array_equal(streamed[k], obs)
    if history > 1:  # within one episode, steps t-3..t clamped at the episode start
        e, t = y[:, 0], y[:, 1]
        assert np.all(x[:, :, 0] == e[:, None])
        np.testing.assert_array_equal(x[:, :, 1], np.maximum(t[:, None] + np.arange(-3, 1), 0))


def test_augmentation_is_train_only_and_keeps_the_order(synthetic: Path, ids: list[int]) -> None:
    aug = Augmenter(noise_std=0.5, obs_std=np.ones(6))
    plain = epoch_batches(synthetic, ids, seed=0)
    noisy = epoch_batches(synthetic, ids, seed=0, augmenter=aug)
    for (o1, a1), (o2, a2) in zip(plain, noisy, strict=True):
        np.testing.assert_array_equal(a1, a2)  # same samples in the same order
        assert not np.array_equal(o1, o2)
    with pytest.raises(ValueError, match="training split only"):
        epoch_batches(synthetic, ids, training=False, augmenter=aug)


def test_bad_settings_are_refused(synthetic: Path, ids: list[int]) -> None:
    with pytest.raises(DatasetError, match="no episode 99"):
        epoch_batches(synthetic, [0, 99])
    for bad in ({"batch_size": 0}, {"block_steps": -1}, {"history": 0}, {"cycle_length": 1.5}):
        with pytest.raises(ValueError, match=">= 1"):
            epoch_batches(synthetic, ids, **bad)
    with pytest.raises(ValueError, match="mirror map of sim/HumanoidRun-v0 is for 44 obs"):
        mirror = mirror_spec("sim/HumanoidRun-v0")  # the synthetic data has 6 features
        epoch_batches(synthetic, ids, augmenter=Augmenter(mirror=mirror))


def test_block_cache_gives_the_same_batches(synthetic: Path, ids: list[int]) -> None:
    cache = BlockCache(budget_bytes=10**9)
    small = BlockCache(budget_bytes=20_000)  # room for a few blocks only
    for epoch in (0, 1):
        want = epoch_batches(synthetic, ids, seed=0, epoch=epoch, history=3)
        for c in (cache, small):
            got = epoch_batches(synthetic, ids, seed=0, epoch=epoch, history=3, cache=c)
            assert all(np.array_equal(a[0], b[0]) for a, b in zip(got, want, strict=True))
    blocks = sum(-(-n // 50) for n in LENGTHS)  # block_steps=50
    assert cache.hits == blocks  # the second epoch read nothing from the file
    assert 0 < small.used_bytes <= 20_000 and 0 < small.hits < blocks


def test_non_finite_values_stop_the_stream(synthetic: Path, ids: list[int], tmp_path) -> None:
    bad = tmp_path / "bad.h5"
    shutil.copy(synthetic, bad)
    with h5py.File(bad, "r+") as f:  # the writer never stores NaN: simulate a damaged file
        f["episode_2/actions"][700, 1] = np.inf
    with pytest.raises(DatasetError, match=r"bad\.h5: episode 2 holds NaN or Inf values near"):
        epoch_batches(bad, ids)


def test_memory_stays_bounded_on_a_larger_file(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path / "big.h5", [2000] * 20, obs_dim=128, compression="none")
    row_bytes = (128 + 2) * 4
    data_bytes = 20 * 2001 * row_bytes
    with open_dataset(path) as ds:
        ids = ds.episode_ids()
        tracemalloc.start()
        try:
            count = 0
            for _, act in iter_batches(ds, ids, batch_size=64, shuffle_buffer=2048,
                                       block_steps=128, cycle_length=4):  # fmt: skip
                count += len(act)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert count == 40_000
    # The shuffle buffer, an output group of 8 batches being filled and one handed out,
    # a few blocks: ~2 MB, whatever the file's size (here 20 MB).
    budget = (2048 + 3 * 8 * 64 + 4 * 128) * row_bytes * 1.5
    assert peak < budget < data_bytes / 5, (peak, budget)


# --------------------------------------------------------------------------- tf.data
@pytest.mark.parametrize("cache_mb", [0, 50])
def test_tf_dataset_streams_epochs_in_order(synthetic: Path, ids: list[int], cache_mb) -> None:
    pytest.importorskip("tensorflow")
    from datasets.training.tfdata import make_tf_dataset

    settings = {"batch_size": 64, "shuffle_buffer": 500, "block_steps": 50, "cycle_length": 3}
    ds = make_tf_dataset(synthetic, ids, seed=5, cache_mb=cache_mb, **settings)
    assert int(ds.cardinality()) == batches_per_epoch(synthetic, ids, 64)
    assert ds.element_spec[0].shape.as_list() == [None, 6]
    for epoch in (0, 1):  # each iteration is the next epoch
        got = [(o.numpy(), a.numpy()) for o, a in ds]
        want = epoch_batches(synthetic, ids, seed=5, epoch=epoch)
        assert len(got) == len(want)
        for (o1, a1), (o2, a2) in zip(got, want, strict=True):
            np.testing.assert_array_equal(o1, o2)
            np.testing.assert_array_equal(a1, a2)
    resumed = make_tf_dataset(synthetic, ids, seed=5, epoch=1, **settings)
    first = next(iter(resumed))[1].numpy()
    np.testing.assert_array_equal(first, epoch_batches(synthetic, ids, seed=5, epoch=1)[0][1])
    endless = make_tf_dataset(synthetic, ids, seed=5, epochs=None, history=3, **settings)
    assert endless.element_spec[0].shape.as_list() == [None, 3, 6]
    n = batches_per_epoch(synthetic, ids, 64)
    assert sum(1 for _ in endless.take(2 * n + 1)) == 2 * n + 1


def test_tf_dataset_checks_arguments_before_training(synthetic: Path, ids: list[int]) -> None:
    pytest.importorskip("tensorflow")
    from datasets.training.tfdata import make_tf_dataset

    with pytest.raises(DatasetError, match="no episode 42"):
        make_tf_dataset(synthetic, [42], batch_size=8)
    with pytest.raises(ValueError, match="training split only"):
        make_tf_dataset(synthetic, ids, batch_size=8, training=False,
                        augmenter=Augmenter(noise_std=0.1, obs_std=np.ones(6)))  # fmt: skip
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        make_tf_dataset(synthetic, ids, batch_size=8, epochs=0)


def test_keras_fit_reshuffles_every_epoch(synthetic: Path, ids: list[int], monkeypatch) -> None:
    keras = pytest.importorskip("keras")
    import datasets.training.tfdata as tfdata

    epochs_read: list[tuple[bool, int]] = []
    original = tfdata.iter_groups

    def spy(*args, **kw):
        epochs_read.append((kw["training"], kw["epoch"]))
        return original(*args, **kw)

    monkeypatch.setattr(tfdata, "iter_groups", spy)
    train = tfdata.make_tf_dataset(synthetic, ids[:5], batch_size=64, seed=0)
    val = tfdata.make_tf_dataset(synthetic, ids[5:], batch_size=64, training=False)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(train, validation_data=val, epochs=3, verbose=0)
    assert len(history.history["val_loss"]) == 3
    # Training reads epochs 0, 1, 2, and starts epoch 3 ahead of a next iteration
    # (validation data ignores the epoch: never shuffled).
    assert [e for training, e in epochs_read if training] == [0, 1, 2, 3]
