"""Augmentation functions: statistical checks with seeded generators, and their contracts.

Noise and dropout are checked on synthetic batches; mirroring on real observations and
actions of both humanoids (short expert rollouts), against the environments' own map.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from datasets.training.augment import Augmenter, feature_dropout, gaussian_noise, mirror_batch
from datasets.training.stats import FeatureStats
from sim import EXPERT_FOR_ENV, load_expert
from sim.mirror import RUN_ENV_ID, MirrorSpec, mirror_spec
from sim.skills import WALK

WALK_ENV_ID = WALK.env_id

N, D, A = 40_000, 4, 3
# Expert rollouts for the mirror tests: per env, a few episodes of a few steps.
ROLLOUT_STARTS, ROLLOUT_STEPS = 3, 20


@pytest.fixture(scope="module", params=[WALK_ENV_ID, RUN_ENV_ID], ids=["walk", "run"])
def real(request: pytest.FixtureRequest) -> tuple[MirrorSpec, np.ndarray, np.ndarray]:
    """An env's mirror map and (steps, dim) float32 observations and actions of its expert.

    The walk's episodes start at three clip phases, so its phase column covers the cycle.
    """
    env_id = request.param
    env, expert = gym.make(env_id), load_expert(EXPERT_FOR_ENV[env_id])
    observations, actions = [], []
    try:
        for start in range(ROLLOUT_STARTS):
            options = {"start_phase": start / ROLLOUT_STARTS} if env_id == WALK_ENV_ID else None
            obs, _ = env.reset(seed=start, options=options)
            for _ in range(ROLLOUT_STEPS):
                action = expert.act(obs).astype(np.float32)
                observations.append(obs)
                actions.append(action)
                obs, _, terminated, _, _ = env.step(action)
                assert not terminated
    finally:
        env.close()
    return mirror_spec(env_id), np.array(observations), np.array(actions)


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


def test_mirroring_is_the_envs_mirror_row_by_row(real) -> None:
    spec, obs, act = real
    out_obs, out_act = mirror_batch(obs, act, spec, np.random.default_rng(0), prob=1.0)
    assert out_obs.dtype == np.float32 and out_act.dtype == np.float32
    for row in range(len(obs)):
        np.testing.assert_array_equal(out_obs[row], spec.mirror_obs(obs[row]))
        np.testing.assert_array_equal(out_act[row], spec.mirror_act(act[row]))
    if spec.phase_index is not None:
        # The walk's clip phase moves half a cycle: a permutation with signs keeps it.
        phase = obs[:, spec.phase_index]
        assert np.ptp(phase) > 0.5  # the rollouts cover the cycle
        np.testing.assert_allclose(out_obs[:, spec.phase_index], (phase + 0.5) % 1.0, atol=1e-7)
        linear_only = obs[:, spec.obs_perm] * spec.obs_sign.astype(np.float32)
        assert np.all(out_obs[:, spec.phase_index] != linear_only[:, spec.phase_index])


def test_mirroring_twice_is_the_identity_on_real_data(real) -> None:
    spec, obs, act = real
    rng = np.random.default_rng(0)
    twice_obs, twice_act = mirror_batch(*mirror_batch(obs, act, spec, rng, 1.0), spec, rng, 1.0)
    np.testing.assert_array_equal(twice_act, act)
    linear = np.arange(spec.obs_dim) != spec.phase_index  # all entries but the phase
    np.testing.assert_array_equal(twice_obs[:, linear], obs[:, linear])
    np.testing.assert_allclose(twice_obs, obs, rtol=0, atol=1e-7)  # phase: one rounding


def test_mirror_batch_flips_samples_with_probability_p(real) -> None:
    spec, obs, act = real
    obs, act = np.tile(obs, (N // len(obs), 1)), np.tile(act, (N // len(act), 1))
    out_obs, out_act = mirror_batch(obs, act, spec, np.random.default_rng(0), prob=0.3)
    mirrored_obs, mirrored_act = spec.mirror_obs(obs), spec.mirror_act(act)
    flipped = np.all(out_act == mirrored_act, axis=1)
    assert abs(flipped.mean() - 0.3) < 0.01  # std of this rate: 0.0023
    # The same samples are mirrored in observations and actions, the others untouched.
    np.testing.assert_array_equal(out_obs[flipped], mirrored_obs[flipped])
    np.testing.assert_array_equal(out_obs[~flipped], obs[~flipped])
    np.testing.assert_array_equal(out_act[~flipped], act[~flipped])
    none = mirror_batch(obs, act, spec, np.random.default_rng(0), prob=0.0)
    np.testing.assert_array_equal(none[0], obs)


def test_mirror_mirrors_a_history_window_as_a_whole(real) -> None:
    spec, obs, act = real
    k = 4
    windows = np.lib.stride_tricks.sliding_window_view(obs, k, axis=0).transpose(0, 2, 1)
    targets = act[k - 1 :]
    out, out_act = mirror_batch(windows, targets, spec, np.random.default_rng(1), prob=0.5)
    flipped = np.all(out_act == spec.mirror_act(targets), axis=1)
    assert 0 < flipped.sum() < len(flipped)
    np.testing.assert_array_equal(out[flipped], spec.mirror_obs(windows[flipped]))
    np.testing.assert_array_equal(out[~flipped], windows[~flipped])


def test_a_mirror_that_does_not_fit_is_refused(batch) -> None:
    obs, act = batch
    with pytest.raises(
        ValueError,
        match=r"mirror map of sim/HumanoidRun-v0 is for 44 "
        r"observations and 17 actions, the data has 4 and 3",
    ):
        mirror_batch(obs, act, mirror_spec(RUN_ENV_ID), np.random.default_rng(0), prob=0.0)


def test_augmenter_composes_and_leaves_inputs_alone(real) -> None:
    spec, obs, act = real
    obs, act = np.tile(obs, (N // len(obs), 1)), np.tile(act, (N // len(act), 1))
    obs_copy, act_copy = obs.copy(), act.copy()
    stats = FeatureStats.of(obs)
    aug = Augmenter.from_stats(stats, noise_std=0.05, feature_dropout=0.1, mirror=spec,
                               mirror_prob=0.5)  # fmt: skip
    assert aug.active and not Augmenter().active
    out_obs, out_act = aug(obs, act, np.random.default_rng(0))
    np.testing.assert_array_equal(obs, obs_copy)
    np.testing.assert_array_equal(act, act_copy)
    again = aug(obs, act, np.random.default_rng(0))
    np.testing.assert_array_equal(out_obs, again[0])  # seeded: reproducible
    mirrored = np.all(out_act == spec.mirror_act(act), axis=1)
    assert 0.49 < mirrored.mean() < 0.51  # std of this rate: 0.0025
    np.testing.assert_array_equal(out_act[~mirrored], act[~mirrored])
    # Mirror first, then noise and dropout: dropped values sit at the mean of the
    # feature they land in, not at the (mirrored) mean of the twin they came from.
    twin_mean = spec.mirror_obs(stats.mean.astype(np.float32)[None])[0]
    j = int(np.argmax(np.abs(twin_mean - stats.mean)))
    assert abs(twin_mean[j] - stats.mean[j]) > 1e-3
    dropped = out_obs[:, j] == np.float32(stats.mean[j])
    assert abs(dropped.mean() - 0.1) < 0.01  # std of this rate: 0.0015
    assert not np.any(out_obs[:, j] == twin_mean[j])
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
    walk = mirror_spec(WALK_ENV_ID)
    Augmenter(mirror=walk, obs_std=np.ones(walk.obs_dim)).check(walk.obs_dim, walk.act_dim)
    with pytest.raises(ValueError, match=r"for 197 observations and 36 actions, the data has 44"):
        Augmenter(mirror=walk).check(44, 17)
    with pytest.raises(ValueError, match="obs_std has shape"):
        Augmenter(noise_std=0.1, obs_std=np.ones(3)).check(D, A)
