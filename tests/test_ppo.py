"""The PPO pieces of ``pipeline finetune`` against hand-computed values, and PPO improving a
small control task within a test's budget."""

from __future__ import annotations

import math
from dataclasses import replace

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import norm

from models.inference import compile_numpy
from pipeline.algorithms.ppo import (
    PPO,
    GaussianPolicy,
    clipped_surrogate,
    gae,
    segments_batch,
    value_network,
)
from pipeline.rollout.segments import SegmentTask, SegmentWorker, gaussian_log_prob


def test_gae_on_a_short_trajectory_with_a_cut_and_a_fall():
    """Four steps: the episode is cut after step 1 (bootstrap value 2.0) and the next one
    falls at step 3. gamma 0.9, lambda 0.8, worked by hand:
    t=3 fall: delta = 1 - 0.8 = 0.2, A = 0.2;
    t=2: delta = 1 + 0.9 * 0.8 - 0.7 = 1.02, A = 1.02 + 0.72 * 0.2 = 1.164;
    t=1 cut: delta = 1 + 0.9 * 2.0 - 0.6 = 2.2, A = 2.2 (nothing from the next episode);
    t=0: delta = 1 + 0.9 * 0.6 - 0.5 = 1.04, A = 1.04 + 0.72 * 2.2 = 2.624."""
    rewards = np.ones(4)
    values = np.array([0.5, 0.6, 0.7, 0.8])
    next_values = np.array([0.6, 2.0, 0.8, 123.0])  # after a fall the value is ignored
    terminated = np.array([False, False, False, True])
    truncated = np.array([False, True, False, False])
    advantages, returns = gae(rewards, values, next_values, terminated, truncated, 0.9, 0.8)
    np.testing.assert_allclose(advantages, [2.624, 2.2, 1.164, 0.2], rtol=1e-12)
    np.testing.assert_allclose(returns, advantages + values, rtol=1e-12)


def test_segments_batch_bootstraps_cut_steps_from_their_final_observation():
    """The value after a cut step is the critic's value of the observation the episode was
    cut at, not of the next episode's first state."""
    from pipeline.rollout.segments import Segment

    obs = np.array([[0.0], [1.0], [2.0]], np.float32)
    segment = Segment(
        obs=obs,
        actions=np.zeros((3, 1), np.float32),
        log_probs=np.zeros(3),
        rewards=np.zeros(3),
        terminated=np.zeros(3, bool),
        truncated=np.array([True, False, True]),
        final_obs=np.array([[10.0], [20.0]], np.float32),
        episodes=[],
    )
    batch = segments_batch([segment], lambda x: x[:, 0].astype(np.float64), gamma=0.5, lam=1.0)
    # t=2 cut: 0.5 * 20 - 2 = 8; t=1: 0.5 * 2 - 1 + 0.5 * 8 = 4; t=0 cut: 0.5 * 10 - 0 = 5.
    np.testing.assert_allclose(batch.advantages, [5.0, 4.0, 8.0])


def test_clipped_surrogate_takes_the_pessimistic_term():
    """ratio 0.5 / 1.0 / 1.5 / 0.5 with advantages 1 / -1 / 2 / -1, clip 0.2:
    min(0.5, 0.8) = 0.5; -1; min(3, 2.4) = 2.4; min(-0.5, -0.8) = -0.8; mean 0.275."""
    log_ratio = tf.math.log(tf.constant([0.5, 1.0, 1.5, 0.5]))
    loss = clipped_surrogate(log_ratio, tf.constant([1.0, -1.0, 2.0, -1.0]), 0.2)
    assert float(loss) == pytest.approx(-0.275, abs=1e-6)


def test_gaussian_log_prob_matches_scipy():
    """The learner's (TensorFlow) and the workers' (NumPy) log-densities equal the sum of
    SciPy's per-dimension normal log-densities; the spread is exp(log_std) * action std."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="mean")(inputs))
    scale = np.array([0.5, 2.0], np.float32)
    policy = GaussianPolicy(model, scale, log_std=-1.0, log_std_bounds=(-5.0, 1.0))
    obs = rng.normal(size=(5, 3)).astype(np.float32)
    actions = rng.normal(size=(5, 2)).astype(np.float32)
    mean = model(obs).numpy()
    std = np.exp(-1.0) * scale
    expected = norm.logpdf(actions, mean, std).sum(axis=1)
    log_prob, _ = policy.log_prob(tf.constant(obs), tf.constant(actions))
    np.testing.assert_allclose(log_prob.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(gaussian_log_prob(actions, mean, std), expected, rtol=1e-5)
    np.testing.assert_allclose(policy.std(), std, rtol=1e-6)


class PointMass(gym.Env):
    """Hold a point at the origin: x' = x + 0.1 a, reward 1 - x^2, 20 steps; it 'falls'
    (terminates) beyond |x| = 2. Starts uniform in [-1.5, 1.5]."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1.5, 1.5)), 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += 0.1 * float(np.clip(action[0], -5, 5))
        self.t += 1
        fell = abs(self.x) > 2.0
        obs = np.array([self.x], np.float32)
        return obs, 1.0 - min(self.x**2, 4.0), fell, self.t >= 20, {"fell": fell}


gym.register("tests/PointMass-v0", entry_point=PointMass)


def test_a_segment_on_several_envs_steps_them_in_lanes_with_one_forward_pass():
    """Three environments in lockstep: one forward pass of three rows per step; each
    environment's steps form a block of their own that ends in a cut or a fall; the first
    keeps the one-environment segment's stream, the others have their own."""
    rows: list[int] = []

    def forward(x: np.ndarray) -> np.ndarray:
        rows.append(len(x))
        return -x

    task = SegmentTask(forward, np.full(1, 0.3), np.ones(1), 90, seed=3, envs=3)
    three = SegmentWorker("tests/PointMass-v0", {}).run(task)
    assert rows == [3] * 30
    one = SegmentWorker("tests/PointMass-v0", {}).run(replace(task, steps=30, envs=1))
    for name in ("obs", "actions", "log_probs", "rewards", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(three, name)[:30], getattr(one, name))
    assert all(three.terminated[i] or three.truncated[i] for i in (29, 59, 89))
    assert not np.array_equal(three.obs[30:60], three.obs[:30])
    assert len(three.final_obs) == three.truncated.sum()


def _mean_return(worker: SegmentWorker, forward, seeds: range) -> float:
    """Return of the deterministic policy (spread ~0) over whole episodes."""
    task = SegmentTask(forward, np.full(1, 1e-9), np.ones(1), 20 * len(seeds), seed=10_000)
    episodes = worker.run(task).episodes
    return float(np.mean([e["return"] for e in episodes]))


def _ppo(policy: GaussianPolicy, critic, *, policy_lr: float, epochs: int, minibatch: int) -> PPO:
    """PPO with the control task's settings (log-std and critic step sizes 1e-2, no KL stop)."""
    return PPO(policy, critic, policy_lr=policy_lr, log_std_lr=1e-2, value_lr=1e-2,
               max_grad_norm=1.0, clip=0.2, epochs=epochs, minibatch=minibatch,
               target_kl=None, seed=0)  # fmt: skip


def test_ppo_improves_the_return_of_a_small_control_task():
    """From a policy that does nothing (mean action 0), 15 updates of 1024 steps raise the
    deterministic policy's return by more than half of what there is to gain."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1,))
    head = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer="zeros")
    model = keras.Model(inputs, head(inputs))
    policy = GaussianPolicy(model, np.ones(1, np.float32), log_std=0.0, log_std_bounds=(-3.0, 1.0))
    critic = value_network(np.zeros(1, np.float32), np.ones(1, np.float32), [32], 10.0)
    ppo = _ppo(policy, critic, policy_lr=3e-2, epochs=8, minibatch=256)
    worker = SegmentWorker("tests/PointMass-v0", {})
    seeds = range(30)
    before = _mean_return(worker, compile_numpy(model, check=False), seeds)
    for update in range(15):
        task = SegmentTask(
            compile_numpy(model, check=False), policy.std(), np.ones(1), 1024, seed=update
        )
        batch = segments_batch([worker.run(task)], ppo.values, gamma=0.9, lam=0.95)
        ppo.update(batch, None)
    after = _mean_return(worker, compile_numpy(model, check=False), seeds)
    best = 20.0  # every step at the origin
    assert after - before > 0.5 * (best - before), (before, after)
    assert float(model.layers[-1].kernel.numpy()[0, 0]) < 0  # it pushes back to the origin
    assert math.isfinite(float(policy.log_std.numpy()[0]))


def test_the_critic_alone_leaves_the_policy_unchanged():
    """``train_policy=False`` (the warm-up) moves the critic and nothing of the policy."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    policy = GaussianPolicy(model, np.ones(1, np.float32), log_std=-1.0, log_std_bounds=(-3.0, 1.0))
    critic = value_network(np.zeros(1, np.float32), np.ones(1, np.float32), [8], 10.0)
    ppo = _ppo(policy, critic, policy_lr=1e-2, epochs=2, minibatch=64)
    worker = SegmentWorker("tests/PointMass-v0", {})
    task = SegmentTask(compile_numpy(model, check=False), policy.std(), np.ones(1), 256, seed=1)
    batch = segments_batch([worker.run(task)], ppo.values, gamma=0.9, lam=0.95)
    weights, value_weights = model.get_weights(), critic.get_weights()
    metrics = ppo.update(batch, None, train_policy=False)
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert policy.log_std.numpy()[0] == np.float32(-1.0)
    assert any(
        not np.array_equal(a, b) for a, b in zip(value_weights, critic.get_weights(), strict=True)
    )
    assert "policy_loss" not in metrics and metrics["value_loss"] > 0
