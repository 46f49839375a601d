"""Episode splits and streaming normalization statistics, checked against NumPy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from datasets import DatasetError, open_dataset
from datasets.training.splits import split_episodes, validation_count
from datasets.training.stats import FeatureStats, NormalizationStats, compute_stats


def recorded(tmp_path_factory: pytest.TempPathFactory, name: str, **config) -> Path:
    """Record a demonstration file once per test session (other modules reuse it)."""
    from pipeline.stages.record import RecordConfig, record

    path = tmp_path_factory.getbasetemp() / "recorded" / f"{name}.h5"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        record(RecordConfig(out=path, **config))
    return path


@pytest.fixture(scope="session")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recorded(tmp_path_factory, "run3", env_id="sim/HumanoidRun-v0", episodes=3, seed=0)


@pytest.fixture(scope="session")
def walk_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recorded(tmp_path_factory, "walk3", env_id="sim/HumanoidWalk-v0", episodes=3,
                    seed=0, episode_seconds=2.0)  # fmt: skip


# ----------------------------------------------------------------------------- splits
def test_split_is_deterministic_disjoint_and_by_episode() -> None:
    ids = list(range(20))
    train, val = split_episodes(ids, 0.2, seed=3)
    assert (train, val) == split_episodes(ids, 0.2, seed=3)
    assert (train, val) == split_episodes(reversed(ids), 0.2, seed=3)  # order of input irrelevant
    assert len(val) == 4 and not set(train) & set(val) and sorted(train + val) == ids
    assert train == sorted(train) and val == sorted(val)
    others = {tuple(split_episodes(ids, 0.2, seed=s)[1]) for s in range(10)}
    assert len(others) > 5  # the seed matters


def test_split_keeps_one_episode_in_each_split() -> None:
    assert [len(s) for s in split_episodes([7, 9], 0.01, seed=0)] == [1, 1]
    assert [len(s) for s in split_episodes([7, 9], 0.99, seed=0)] == [1, 1]
    assert [len(s) for s in split_episodes(range(10), 0.95, seed=0)] == [1, 9]
    assert split_episodes([4, 2], 0.0, seed=0) == ([2, 4], [])
    assert validation_count(10, 0.25) == 2  # round(2.5) -> 2 (banker's rounding)


@pytest.mark.parametrize(
    ("ids", "fraction", "message"),
    [
        (range(5), 1.0, "in [0, 1)"),
        (range(5), -0.1, "in [0, 1)"),
        (range(5), float("nan"), "in [0, 1)"),
        (range(5), "0.2", "a number"),
        ([3], 0.2, "need at least 2"),
        ([], 0.0, "no episodes"),
        ([1, 1, 2], 0.5, "unique"),
    ],
)
def test_split_rejects_bad_input(ids, fraction, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        split_episodes(ids, fraction, seed=0)


# ------------------------------------------------------------------------------ stats
def numpy_arrays(path: Path, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Observations paired with actions and the actions, fully loaded, in float64."""
    with open_dataset(path) as ds:
        obs = np.concatenate([ds.episode(i).observations[:-1] for i in ids])
        act = np.concatenate([ds.episode(i).actions for i in ids])
    return obs.astype(np.float64), act.astype(np.float64)


def assert_matches(stats: FeatureStats, x: np.ndarray) -> None:
    assert stats.count == len(x)
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats.var, x.var(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats.std, x.std(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.min, x.min(axis=0))
    np.testing.assert_array_equal(stats.max, x.max(axis=0))


@pytest.mark.parametrize("block_steps", [7, 333, 4096])
def test_streaming_stats_match_numpy_on_the_train_split(run_file: Path, block_steps: int) -> None:
    with open_dataset(run_file) as ds:
        train, _ = split_episodes(ds.episode_ids(), 0.34, seed=0)
    stats = compute_stats(run_file, train, block_steps=block_steps)
    obs, act = numpy_arrays(run_file, train)
    assert_matches(stats.observations, obs)
    assert_matches(stats.actions, act)
    assert stats.episode_ids == tuple(train) and len(obs) == 2000  # 2 episodes x 1000 steps


def test_streaming_stats_of_the_walk(walk_file: Path) -> None:
    with open_dataset(walk_file) as ds:
        ids = ds.episode_ids()
        stats = compute_stats(ds, ids, block_steps=10)  # an open Dataset works too
    obs, act = numpy_arrays(walk_file, ids)
    assert stats.observations.shape == (197,) and stats.actions.shape == (36,)
    assert_matches(stats.observations, obs)
    assert_matches(stats.actions, act)


def test_merge_is_stable_far_from_zero() -> None:
    rng = np.random.default_rng(0)
    x = 1e6 + rng.standard_normal((10_000, 3))  # naive sum-of-squares loses every digit here
    stats = FeatureStats.empty((3,))
    for block in np.array_split(x, 37):
        stats = stats.merge(FeatureStats.of(block))
    assert_matches(stats, x)
    assert_matches(FeatureStats.of(x).merge(FeatureStats.empty((3,))), x)


def test_stats_round_trip_through_json(run_file: Path) -> None:
    stats = compute_stats(run_file, [0, 2])
    again = NormalizationStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again.episode_ids == (0, 2)
    for name in ("observations", "actions"):
        a, b = getattr(stats, name), getattr(again, name)
        assert a.count == b.count
        for field in ("mean", "var", "min", "max"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    with pytest.raises(ValueError, match="mean has 2 values"):
        FeatureStats.from_dict({**stats.actions.to_dict(), "mean": [0.0, 1.0]})
    assert not stats.actions.mean.flags.writeable  # frozen really means frozen


def test_zscore_and_minmax_parameters() -> None:
    x = np.array([[0.0, 5.0, 2.0], [2.0, 5.0, 4.0], [4.0, 5.0, 12.0]])
    stats = FeatureStats.of(x)
    mean, var = stats.normalization("zscore")
    np.testing.assert_allclose(mean, x.mean(0))
    np.testing.assert_allclose(var, [x[:, 0].var(), 1.0, x[:, 2].var()])  # constant -> 1
    low, span2 = stats.normalization("minmax")
    np.testing.assert_allclose(low, [0.0, 5.0, 2.0])
    np.testing.assert_allclose(span2, [16.0, 1.0, 100.0])
    np.testing.assert_allclose((x - low) / np.sqrt(span2), [[0, 0, 0], [0.5, 0, 0.2], [1, 0, 1]])
    with pytest.raises(ValueError, match="unknown normalization"):
        stats.normalization("robust")
    with pytest.raises(ValueError, match="no rows"):
        FeatureStats.empty((3,)).normalization()


def test_scale_floor_lifts_near_constant_features_only() -> None:
    x = np.array([[0.0, 5.0, 1.000], [2.0, 5.0, 1.002], [4.0, 5.0, 0.998]])
    stats = FeatureStats.of(x)
    _, plain = stats.normalization("zscore")
    _, floored = stats.normalization("zscore", scale_floor=0.1)
    # The varying feature keeps its std, the constant one its variance of 1, and the
    # near-constant one (std 0.0016) is divided by 0.1 instead of magnified ~600 times.
    np.testing.assert_allclose(floored, [plain[0], 1.0, 0.01])
    assert plain[2] < 1e-5
    _, span2 = stats.normalization("minmax", scale_floor=0.1)
    np.testing.assert_allclose(span2, [16.0, 1.0, 0.01])


def test_parameters_work_in_keras_normalization(run_file: Path) -> None:
    keras = pytest.importorskip("keras")
    stats = compute_stats(run_file, [0, 1])
    obs, _ = numpy_arrays(run_file, [0, 1])
    mean, var = stats.observations.normalization("zscore")
    z = np.asarray(keras.layers.Normalization(mean=mean, variance=var)(obs.astype(np.float32)))
    varying = stats.observations.std >= 1e-6
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0)[varying], 1.0, rtol=1e-3)
    low, span2 = stats.observations.normalization("minmax")
    m = np.asarray(keras.layers.Normalization(mean=low, variance=span2)(obs.astype(np.float32)))
    np.testing.assert_allclose(m.min(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(m.max(0)[varying], 1.0, rtol=1e-5)


def test_non_finite_values_and_unknown_episodes_are_refused(run_file: Path, tmp_path) -> None:
    bad = tmp_path / "bad.h5"
    shutil.copy(run_file, bad)
    with h5py.File(bad, "r+") as f:  # the writer never stores NaN: simulate a damaged file
        f["episode_1/observations"][5, 3] = np.nan
    assert compute_stats(bad, [0, 2]).observations.count == 2000  # episode 1 not read
    with pytest.raises(DatasetError, match=r"bad\.h5: episode 1 observations holds NaN"):
        compute_stats(bad, [0, 1])
    with pytest.raises(DatasetError, match="no episode 9"):
        compute_stats(run_file, [0, 9])
    with pytest.raises(ValueError, match="no episodes"):
        compute_stats(run_file, [])
