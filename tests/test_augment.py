"""Augmentation functions: statistical checks with seeded generators, and their contracts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from datasets.augment import (
    Augmenter,
    feature_dropout,
    gaussian_noise,
    mirror_arrays,
    mirror_batch,
)
from datasets.stats import FeatureStats

N, D, A = 40_000, 4, 3


@dataclass(frozen=True)
class TinyMirror:
    """A synthetic mirror: swap obs 0<->1 (left/right pair), negate obs 3 (a lateral
    velocity), keep obs 2; swap actions 0<->2 and negate action 1."""

    obs_perm: tuple = (1, 0, 2, 3)  # plain sequences do: the spec is duck-typed
    obs_sign: tuple = (1.0, 1.0, 1.0, -1.0)
    act_perm: tuple = (2, 1, 0)
    act_sign: tuple = (1.0, -1.0, 1.0)


@pytest.fixture
def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(123)
    obs = rng.standard_normal((N, D)) * [1.0, 3.0, 0.0, 0.5] + [0.0, 10.0, 7.0, -2.0]
    act = rng.standard_normal((N, A))
    return obs.astype(np.float32), act.astype(np.float32)


def test_noise_is_relative_to_each_feature_std(batch) -> None:
    obs, _ = batch
    std = FeatureStats.of(obs).std
    noisy = gaussian_noise(obs, std, 0.1, np.random.default_rng(0))
    diff = (noisy - obs).astype(np.float64)
    assert noisy.dtype == np.float32 and noisy.shape == obs.shape
    np.testing.assert_allclose(diff.std(0), 0.1 * std, rtol=0.02)  # ~0.7% sampling error
    assert np.all(np.abs(diff.mean(0)) <= 0.002 * std + 1e-7)  # 4 standard errors
    assert np.all(noisy[:, 2] == obs[:, 2])  # a constant feature (std 0) is left exact
    again = gaussian_noise(obs, std, 0.1, np.random.default_rng(0))
    np.testing.assert_array_equal(noisy, again)  # same generator state, same noise
    np.testing.assert_array_equal(gaussian_noise(obs, std, 0.0, np.random.default_rng(1)), obs)


def test_dropout_drops_to_the_mean_at_the_given_rate(batch) -> None:
    obs, _ = batch
    mean = obs.mean(0)
    out = feature_dropout(obs, 0.2, mean, np.random.default_rng(0))
    dropped = (out == mean) & (obs != mean)
    varying = [0, 1, 3]  # feature 2 is constant: dropping it changes nothing
    assert abs(dropped[:, varying].mean() - 0.2) < 0.005  # std of this rate: 0.0012
    np.testing.assert_allclose(dropped[:, varying].mean(0), 0.2, atol=0.01)  # each alike
    assert np.all((out == obs) | dropped)  # kept values are exact
    assert out.dtype == np.float32
    np.testing.assert_array_equal(feature_dropout(obs, 0.0, mean, np.random.default_rng(0)), obs)


def test_dropout_rescale_is_inverted_dropout_about_the_mean(batch) -> None:
    obs, _ = batch
    mean = obs.astype(np.float64).mean(0)
    out = feature_dropout(obs.astype(np.float64), 0.25, mean, np.random.default_rng(0),
                          rescale=True)  # fmt: skip
    kept = out != mean
    np.testing.assert_allclose(out[kept], (mean + (obs - mean) / 0.75)[kept], rtol=1e-12)
    # Inverted dropout keeps each feature's expected deviation from the mean.
    np.testing.assert_allclose(out.mean(0), mean, atol=0.05)


def test_mirror_twice_is_identity_and_pairs_obs_with_actions(batch) -> None:
    obs, act = batch
    mirror = TinyMirror()
    m_obs, m_act = mirror_arrays(obs, act, mirror)
    np.testing.assert_array_equal(m_obs[:, 0], obs[:, 1])
    np.testing.assert_array_equal(m_obs[:, 3], -obs[:, 3])
    np.testing.assert_array_equal(m_act[:, [0, 1, 2]], act[:, [2, 1, 0]] * [1, -1, 1])
    twice = mirror_arrays(*mirror_arrays(obs, act, mirror), mirror)
    np.testing.assert_array_equal(twice[0], obs)
    np.testing.assert_array_equal(twice[1], act)
    rng = np.random.default_rng(0)
    all_twice = mirror_batch(*mirror_batch(obs, act, mirror, rng, 1.0), mirror, rng, 1.0)
    np.testing.assert_array_equal(all_twice[0], obs)


def test_mirror_batch_flips_samples_with_probability_p(batch) -> None:
    obs, act = batch
    out_obs, out_act = mirror_batch(obs, act, TinyMirror(), np.random.default_rng(0), prob=0.3)
    flipped = out_obs[:, 3] != obs[:, 3]
    assert abs(flipped.mean() - 0.3) < 0.01
    # The same samples are mirrored in observations and actions, the others untouched.
    np.testing.assert_array_equal(flipped, out_act[:, 1] != act[:, 1])
    np.testing.assert_array_equal(out_obs[~flipped], obs[~flipped])
    none = mirror_batch(obs, act, TinyMirror(), np.random.default_rng(0), prob=0.0)
    np.testing.assert_array_equal(none[0], obs)


def test_mirror_mirrors_a_history_window_as_a_whole() -> None:
    rng = np.random.default_rng(0)
    windows = rng.standard_normal((500, 5, D)).astype(np.float32)
    act = rng.standard_normal((500, A)).astype(np.float32)
    out, _ = mirror_batch(windows, act, TinyMirror(), np.random.default_rng(1), prob=0.5)
    per_step = out[:, :, 3] != windows[:, :, 3]
    assert np.all(per_step.all(axis=1) | ~per_step.any(axis=1))  # all steps or none
    assert 0.4 < per_step.all(axis=1).mean() < 0.6


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("obs_perm", np.array([0, 0, 2, 3]), "obs_perm must be a permutation of 4"),
        ("obs_perm", np.array([1, 0, 2]), "obs_perm must be a permutation of 4"),
        ("act_sign", np.array([1.0, np.nan, 1.0]), "act_sign must hold 3 finite"),
    ],
)
def test_a_mirror_that_does_not_fit_is_refused(batch, field, value, message) -> None:
    obs, act = batch
    bad = TinyMirror(**{field: value})
    with pytest.raises(ValueError, match=message):
        mirror_batch(obs, act, bad, np.random.default_rng(0), prob=0.0)


def test_augmenter_composes_and_leaves_inputs_alone(batch) -> None:
    obs, act = batch
    obs_copy, act_copy = obs.copy(), act.copy()
    stats = FeatureStats.of(obs)
    aug = Augmenter.from_stats(stats, noise_std=0.05, feature_dropout=0.1, mirror=TinyMirror(),
                               mirror_prob=0.5)  # fmt: skip
    assert aug.active and not Augmenter().active
    out_obs, out_act = aug(obs, act, np.random.default_rng(0))
    np.testing.assert_array_equal(obs, obs_copy)
    np.testing.assert_array_equal(act, act_copy)
    again = aug(obs, act, np.random.default_rng(0))
    np.testing.assert_array_equal(out_obs, again[0])  # seeded: reproducible
    mirrored = out_act[:, 1] != act[:, 1]
    assert 0.48 < mirrored.mean() < 0.52
    np.testing.assert_array_equal(
        out_act[mirrored], mirror_arrays(obs, act, TinyMirror())[1][mirrored]
    )
    # Mirror first, then noise and dropout: dropped values sit at the mean of the
    # feature they land in, so feature 1's drops equal its own mean (10), not feature 0's.
    dropped = out_obs[:, 1] == np.float32(stats.mean[1])
    assert abs(dropped.mean() - 0.1) < 0.01
    identity = Augmenter()(obs, act, np.random.default_rng(0))
    np.testing.assert_array_equal(identity[0], obs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"noise_std": 0.1}, "needs obs_std"),
        ({"feature_dropout": 0.1}, "needs obs_mean"),
        ({"noise_std": -1.0}, "noise_std must be >= 0"),
        ({"feature_dropout": 1.0, "obs_mean": np.zeros(D)}, r"feature_dropout must be in \[0, 1\)"),
        ({"mirror_prob": 1.5}, r"mirror_prob must be in \[0, 1\]"),
    ],
)
def test_augmenter_rejects_bad_settings(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        Augmenter(**options)


def test_augmenter_checks_sizes() -> None:
    Augmenter(mirror=TinyMirror(), obs_std=np.ones(D)).check(D, A)
    with pytest.raises(ValueError, match="obs_perm must be a permutation of 5"):
        Augmenter(mirror=TinyMirror()).check(5, A)
    with pytest.raises(ValueError, match="obs_std has shape"):
        Augmenter(noise_std=0.1, obs_std=np.ones(3)).check(D, A)
