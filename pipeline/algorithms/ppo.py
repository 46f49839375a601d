"""Proximal policy optimisation (PPO) for a learned Keras policy, with a demonstration
anchor: the engine of ``pipeline finetune``.

Read it top to bottom, as CleanRL's ``ppo_continuous_action.py``:

1. the policy is a Gaussian whose mean is the trained Keras policy (normalization inside,
   raw observations -> raw actions) and whose per-dimension log standard deviation, in
   units of the policy's action std, is one learned vector (:class:`GaussianPolicy`);
2. a value network with the policy's observation normalization (:func:`value_network`);
3. generalised advantage estimation on rollout segments, bootstrapping cut episodes
   (time limit, segment end) from the critic and falls from zero (:func:`gae`);
4. the clipped surrogate objective (:func:`clipped_surrogate`) plus, as DAPG and
   kickstarting do, a behaviour-cloning loss on demonstration or expert actions whose
   weight decays over updates, so early updates cannot forget the gait;
5. minibatch epochs with advantage normalisation, global gradient-norm clipping and an
   early stop once the approximate KL divergence passes its target (:meth:`PPO.update`).

The critic alone is fitted first (:meth:`PPO.update` with ``train_policy=False``): a
randomly initialised critic's advantages are noise, and a few updates on them wreck a
policy that already walks. All randomness (minibatch order, anchor batches) comes from
one NumPy generator whose state is part of :meth:`PPO.state`, so a run resumed from a
checkpoint continues exactly as it would have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


# -- 1. the Gaussian policy ------------------------------------------------------------


class GaussianPolicy:
    """``a ~ N(mean(s), (exp(log_std) * action_scale)^2)``: the trained policy as the mean.

    ``action_scale`` is the policy's action std (its training data's), so ``log_std`` is in
    the z-scored units the policy was trained in: ``log(0.05)`` is a spread of 5% of each
    action dimension's natural variation.
    """

    def __init__(
        self,
        mean_model: keras.Model,
        action_scale: np.ndarray,
        log_std: float,
        log_std_bounds: tuple[float, float],
    ) -> None:
        self.mean_model = mean_model
        self.action_scale = tf.constant(np.asarray(action_scale, np.float32))
        act_dim = int(action_scale.shape[0])
        self.log_std = keras.Variable(np.full(act_dim, log_std, np.float32), name="log_std")
        self.log_std_bounds = log_std_bounds

    @property
    def trainable_variables(self) -> list[Any]:
        """The mean network's weights (the log-std has an optimizer of its own)."""
        return list(self.mean_model.trainable_variables)

    def std(self) -> np.ndarray:
        """The raw-unit standard deviation per action dimension (for the rollout workers)."""
        return np.exp(self.clipped_log_std().numpy()) * self.action_scale.numpy()

    def clipped_log_std(self) -> Any:
        return tf.clip_by_value(self.log_std, *self.log_std_bounds)

    def log_prob(self, obs: Any, actions: Any) -> tuple[Any, Any]:
        """Log-density of ``actions`` (summed over dimensions) and the mean actions."""
        mean = self.mean_model(obs, training=True)
        log_std = self.clipped_log_std()
        z = (actions - mean) / (tf.exp(log_std) * self.action_scale)
        scale_log = tf.reduce_sum(log_std + tf.math.log(self.action_scale))
        dims = tf.cast(tf.shape(actions)[-1], tf.float32)
        return -0.5 * tf.reduce_sum(z * z, axis=-1) - scale_log - 0.5 * dims * LOG_2PI, mean


# -- 2. the critic ---------------------------------------------------------------------


def value_network(
    obs_mean: np.ndarray, obs_variance: np.ndarray, hidden: list[int], value_scale: float
) -> keras.Model:
    """``s -> V(s)``: the policy's observation z-scoring, tanh layers, a linear head whose
    output is multiplied by ``value_scale`` (the order of the returns, 1 / (1 - gamma) for
    rewards in [0, 1]), so the head learns numbers of order one."""
    inputs = keras.Input((obs_mean.shape[0],), name="observation")
    x = keras.layers.Normalization(mean=obs_mean, variance=obs_variance, name="obs_norm")(inputs)
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="tanh", name=f"value_hidden_{i}")(x)
    x = keras.layers.Dense(1, name="value_head")(x)
    x = keras.layers.Rescaling(value_scale, name="value_scale")(x)
    return keras.Model(inputs, x, name="value")


# -- 3. advantages ---------------------------------------------------------------------


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and the critic's targets (advantage + value).

    Step t was taken in a state of value ``values[t]`` and led to one of value
    ``next_values[t]``; a fall (``terminated``) has no future, a cut episode
    (``truncated``: time limit or segment end) keeps its bootstrap ``next_values[t]``, and
    either stops the recursion so no advantage leaks from one episode into the next.
    """
    advantages = np.zeros_like(rewards, dtype=np.float64)
    last = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        alive = 0.0 if terminated[t] else 1.0
        delta = rewards[t] + gamma * alive * next_values[t] - values[t]
        continues = 0.0 if (terminated[t] or truncated[t]) else 1.0
        last = delta + gamma * lam * continues * last
        advantages[t] = last
    return advantages, advantages + values


# -- 4. the objective ------------------------------------------------------------------


def clipped_surrogate(log_ratio: Any, advantages: Any, clip: float) -> Any:
    """PPO's loss: ``-mean(min(r A, clip(r, 1 - e, 1 + e) A))`` with ``r = exp(log_ratio)``."""
    ratio = tf.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = tf.clip_by_value(ratio, 1.0 - clip, 1.0 + clip) * advantages
    return -tf.reduce_mean(tf.minimum(unclipped, clipped))


@dataclass(frozen=True)
class Batch:
    """One update's data, flattened over segments."""

    obs: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray


def segments_batch(segments: list[Any], values: Any, gamma: float, lam: float) -> Batch:
    """The update's batch from rollout segments (:class:`pipeline.rollout.segments.Segment`):
    ``values`` maps observations to the critic's values; GAE per segment, then flattened."""
    advantages, returns = [], []
    for seg in segments:
        value = values(seg.obs)
        next_values = np.append(value[1:], 0.0)
        if len(seg.final_obs):
            next_values[np.flatnonzero(seg.truncated)] = values(seg.final_obs)
        adv, ret = gae(seg.rewards, value, next_values, seg.terminated, seg.truncated, gamma, lam)
        advantages.append(adv)
        returns.append(ret)
    return Batch(
        obs=np.concatenate([s.obs for s in segments]),
        actions=np.concatenate([s.actions for s in segments]),
        log_probs=np.concatenate([s.log_probs for s in segments]),
        advantages=np.concatenate(advantages),
        returns=np.concatenate(returns),
    )


@dataclass(frozen=True)
class Anchor:
    """Demonstration pairs the policy's mean keeps close to, and this update's weight."""

    obs: np.ndarray
    actions: np.ndarray
    weight: float


# -- 5. the update ---------------------------------------------------------------------


class PPO:
    """Holds the Gaussian policy, the critic, their optimizers and the minibatch generator."""

    def __init__(
        self,
        policy: GaussianPolicy,
        critic: keras.Model,
        *,
        policy_lr: float,
        log_std_lr: float,
        value_lr: float,
        max_grad_norm: float,
        clip: float,
        epochs: int,
        minibatch: int,
        target_kl: float | None,
        seed: int,
    ) -> None:
        self.policy = policy
        self.critic = critic
        self.policy_optimizer = keras.optimizers.Adam(policy_lr, global_clipnorm=max_grad_norm)
        # The spread has its own step size: at the mean's (tiny, the policy already walks)
        # it would never move; Adam's steps are about the learning rate whatever the scale.
        self.log_std_optimizer = keras.optimizers.Adam(log_std_lr)
        self.value_optimizer = keras.optimizers.Adam(value_lr, global_clipnorm=max_grad_norm)
        self.policy_optimizer.build(policy.trainable_variables)
        self.log_std_optimizer.build([policy.log_std])
        self.value_optimizer.build(critic.trainable_variables)
        self.clip = clip
        self.epochs = epochs
        self.minibatch = minibatch
        self.target_kl = target_kl
        self.rng = np.random.default_rng(seed)
        self._policy_step = tf.function(self._policy_step_eager, reduce_retracing=True)
        self._value_step = tf.function(self._value_step_eager, reduce_retracing=True)
        self._values = tf.function(self._values_eager, reduce_retracing=True)

    def _values_eager(self, obs: Any) -> Any:
        return self.critic(obs, training=False)[:, 0]

    def values(self, obs: np.ndarray) -> np.ndarray:
        """The critic's values of ``obs`` (float64), in chunks."""
        out = [
            self._values(tf.constant(obs[i : i + 8192])).numpy() for i in range(0, len(obs), 8192)
        ]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def _policy_step_eager(
        self,
        obs: Any,
        actions: Any,
        old_log_probs: Any,
        advantages: Any,
        anchor_obs: Any,
        anchor_actions: Any,
        anchor_weight: Any,
    ) -> Any:
        variables = [*self.policy.trainable_variables, self.policy.log_std]
        with tf.GradientTape() as tape:
            log_probs, _ = self.policy.log_prob(obs, actions)
            log_ratio = log_probs - old_log_probs
            surrogate = clipped_surrogate(log_ratio, advantages, self.clip)
            anchor_mean = self.policy.mean_model(anchor_obs, training=True)
            anchor_z = (anchor_mean - anchor_actions) / self.policy.action_scale
            anchor_loss = tf.reduce_mean(tf.reduce_sum(anchor_z * anchor_z, axis=-1))
            loss = surrogate + anchor_weight * anchor_loss
        grads = tape.gradient(loss, variables)
        self.policy_optimizer.apply(grads[:-1], variables[:-1])
        self.log_std_optimizer.apply(grads[-1:], variables[-1:])
        ratio = tf.exp(log_ratio)
        approx_kl = tf.reduce_mean(ratio - 1.0 - log_ratio)  # Schulman's unbiased k3
        clip_fraction = tf.reduce_mean(tf.cast(tf.abs(ratio - 1.0) > self.clip, tf.float32))
        return surrogate, anchor_loss, approx_kl, clip_fraction

    def _value_step_eager(self, obs: Any, returns: Any) -> Any:
        variables = self.critic.trainable_variables
        with tf.GradientTape() as tape:
            values = self.critic(obs, training=True)[:, 0]
            loss = 0.5 * tf.reduce_mean(tf.square(values - returns))
        self.value_optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    def update(
        self, batch: Batch, anchor: Anchor | None, train_policy: bool = True
    ) -> dict[str, float]:
        """Minibatch epochs over ``batch``; the policy moves only with ``train_policy``.

        Returns the means over the minibatches taken: ``policy_loss`` (the surrogate),
        ``value_loss``, ``anchor_loss``, ``approx_kl``, ``clip_fraction`` and ``epochs``
        (fewer than configured where the KL guard stopped early).
        """
        n = len(batch.obs)
        advantages = batch.advantages
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        sums: dict[str, list[float]] = {
            k: []
            for k in ("policy_loss", "value_loss", "anchor_loss", "approx_kl", "clip_fraction")
        }
        epochs_run = 0
        for _ in range(self.epochs):
            epochs_run += 1
            order = self.rng.permutation(n)
            epoch_kl = []
            for start in range(0, n - self.minibatch + 1, self.minibatch):
                index = order[start : start + self.minibatch]
                obs = tf.constant(batch.obs[index])
                sums["value_loss"].append(
                    float(self._value_step(obs, tf.constant(batch.returns[index], tf.float32)))
                )
                if not train_policy:
                    continue
                anchor_obs, anchor_actions, weight = self._anchor_batch(anchor, batch, index)
                surrogate, anchor_loss, kl, clipped = self._policy_step(
                    obs,
                    tf.constant(batch.actions[index]),
                    tf.constant(batch.log_probs[index], tf.float32),
                    tf.constant(advantages[index], tf.float32),
                    anchor_obs,
                    anchor_actions,
                    tf.constant(weight, tf.float32),
                )
                sums["policy_loss"].append(float(surrogate))
                if weight > 0:  # without an anchor the loss is of nothing
                    sums["anchor_loss"].append(float(anchor_loss))
                sums["approx_kl"].append(float(kl))
                sums["clip_fraction"].append(float(clipped))
                epoch_kl.append(float(kl))
            if train_policy and self.target_kl is not None and np.mean(epoch_kl) > self.target_kl:
                break
        metrics = {k: float(np.mean(v)) for k, v in sums.items() if v}
        metrics["epochs"] = float(epochs_run)
        return metrics

    def _anchor_batch(
        self, anchor: Anchor | None, batch: Batch, index: np.ndarray
    ) -> tuple[Any, Any, float]:
        """A minibatch of anchor pairs as large as the PPO minibatch (weight 0 and the PPO
        minibatch's own states and actions when there is no anchor, to keep one graph)."""
        if anchor is None or anchor.weight <= 0:
            return tf.constant(batch.obs[index]), tf.constant(batch.actions[index]), 0.0
        pick = self.rng.integers(0, len(anchor.obs), size=len(index))
        return tf.constant(anchor.obs[pick]), tf.constant(anchor.actions[pick]), anchor.weight

    # -- checkpoints -------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        """Every array a resumed run needs: both networks, the log-std, both optimizers."""
        arrays: dict[str, np.ndarray] = {}
        for prefix, values in (
            ("policy", self.policy.mean_model.get_weights()),
            ("value", self.critic.get_weights()),
            ("policy_opt", [v.numpy() for v in self.policy_optimizer.variables]),
            ("log_std_opt", [v.numpy() for v in self.log_std_optimizer.variables]),
            ("value_opt", [v.numpy() for v in self.value_optimizer.variables]),
        ):
            for i, value in enumerate(values):
                arrays[f"{prefix}/{i:03d}"] = np.asarray(value)
        arrays["log_std"] = self.policy.log_std.numpy()
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Put back what :meth:`state` returned."""

        def group(prefix: str) -> list[np.ndarray]:
            keys = sorted(k for k in arrays if k.startswith(prefix + "/"))
            return [arrays[k] for k in keys]

        self.policy.mean_model.set_weights(group("policy"))
        self.critic.set_weights(group("value"))
        for variable, value in zip(
            self.policy_optimizer.variables, group("policy_opt"), strict=True
        ):
            variable.assign(value)
        for variable, value in zip(
            self.log_std_optimizer.variables, group("log_std_opt"), strict=True
        ):
            variable.assign(value)
        for variable, value in zip(self.value_optimizer.variables, group("value_opt"), strict=True):
            variable.assign(value)
        self.policy.log_std.assign(arrays["log_std"])
