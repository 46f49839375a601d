"""A Gaussian head for training: the policy's action is the mean, the spread is learned.

With ``loss: gaussian_nll`` the training model ends in :class:`AppendLogStd`, which puts a
learned, state-independent log standard deviation per action dimension beside the mean,
and :class:`GaussianNLL` is the negative log-likelihood of the z-scored expert action under
that Gaussian. Its gradient on the mean is the squared error divided by each dimension's
variance, so dimensions the policy already fits closely weigh more than under plain MSE
(the loss behaviour cloning libraries built on stochastic policies use). The saved policy
never sees the head: it maps observations to the mean action, as with MSE.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

MIN_LOG_STD = -7.0
"""Lower clip of the log spread (std ~ 1e-3 z-scored units): a spread that shrinks without
bound would make the loss unbounded below."""
MAX_LOG_STD = 2.0
"""Upper clip of the log spread."""


@keras.saving.register_keras_serializable(package="humanoid_imitation")
class AppendLogStd(keras.layers.Layer):
    """``mean (B, A) -> concat(mean, log_std) (B, 2A)`` with a learned ``log_std`` (A,)."""

    def __init__(self, units: int, initial: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.initial = float(initial)

    def build(self, input_shape: Any) -> None:
        self.log_std = self.add_weight(
            shape=(self.units,),
            initializer=keras.initializers.Constant(self.initial),
            name="log_std",
        )

    def call(self, mean: Any) -> Any:
        log_std = ops.broadcast_to(ops.cast(self.log_std, mean.dtype), ops.shape(mean))
        return ops.concatenate([mean, log_std], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "initial": self.initial}


@keras.saving.register_keras_serializable(package="humanoid_imitation")
class GaussianNLL(keras.losses.Loss):
    """Negative log-likelihood (without the constant) of ``y_true`` (B, A) under the
    Gaussian ``y_pred = concat(mean, log_std)`` (B, 2A)."""

    def __init__(self, act_dim: int, name: str = "gaussian_nll", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.act_dim = int(act_dim)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        mean = y_pred[..., : self.act_dim]
        log_std = ops.clip(y_pred[..., self.act_dim :], MIN_LOG_STD, MAX_LOG_STD)
        z = (ops.cast(y_true, mean.dtype) - mean) * ops.exp(-log_std)
        return ops.mean(0.5 * ops.square(z) + log_std, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "act_dim": self.act_dim}


@keras.saving.register_keras_serializable(package="humanoid_imitation")
class MeanActionMSE(keras.metrics.MeanMetricWrapper):
    """Squared error of the mean part of a Gaussian head's output (comparable with MSE)."""

    def __init__(self, act_dim: int, name: str = "action_mse", **kwargs: Any) -> None:
        self.act_dim = int(act_dim)
        super().__init__(fn=self._mse, name=name, **kwargs)

    def _mse(self, y_true: Any, y_pred: Any) -> Any:
        mean = y_pred[..., : self.act_dim]
        return ops.mean(ops.square(ops.cast(y_true, mean.dtype) - mean), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "act_dim": self.act_dim}
