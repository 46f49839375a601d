"""Training an ensemble as one Keras model: the members' outputs side by side, each member
scored on its own.

An ensemble policy's training model outputs the members' z-scored actions concatenated,
(batch, members * act_dim); the targets stay (batch, act_dim). :class:`MemberMeanLoss`
compares every member with the same target and averages the members' losses. No member's
loss depends on another member's weights, so each member gets the gradient it would get if
it were fitted alone on the same batches: an ensemble of independent fits, not one wide
network fitted through the average (whose members would co-adapt).
"""

from __future__ import annotations

from typing import Any

import keras


def member_actions(y_pred: Any, members: int, act_dim: int) -> Any:
    """The training model's output as (batch, members, act_dim)."""
    return keras.ops.reshape(y_pred, (-1, members, act_dim))


@keras.saving.register_keras_serializable(package="pipeline")
class MemberMeanLoss(keras.losses.Loss):
    """The mean over ensemble members of ``base`` between each member's action and the
    target."""

    def __init__(self, base: keras.losses.Loss, members: int, act_dim: int,
                 name: str | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(name=name or base.name, **kwargs)
        self.base = base
        self.members = int(members)
        self.act_dim = int(act_dim)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_pred = member_actions(y_pred, self.members, self.act_dim)
        y_true = keras.ops.reshape(keras.ops.cast(y_true, y_pred.dtype), (-1, 1, self.act_dim))
        # (batch, members): the base loss per sample and member; the reduction averages both.
        return self.base.call(keras.ops.broadcast_to(y_true, keras.ops.shape(y_pred)), y_pred)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "base": keras.losses.serialize(self.base),
                "members": self.members, "act_dim": self.act_dim}  # fmt: skip

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MemberMeanLoss:
        config = dict(config)
        config["base"] = keras.losses.deserialize(config["base"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="pipeline")
class EnsembleActionMSE(keras.metrics.MeanMetricWrapper):
    """Squared error of the ensemble's action (the mean of its members' z-scored actions):
    what the policy does, comparable with a single network's MSE (the loss scores the
    members one by one, which is larger)."""

    def __init__(self, members: int, act_dim: int, name: str = "action_mse",
                 **kwargs: Any) -> None:  # fmt: skip
        self.members = int(members)
        self.act_dim = int(act_dim)
        super().__init__(fn=self._mse, name=name, **kwargs)

    def _mse(self, y_true: Any, y_pred: Any) -> Any:
        mean = keras.ops.mean(member_actions(y_pred, self.members, self.act_dim), axis=1)
        return keras.ops.mean(keras.ops.square(keras.ops.cast(y_true, mean.dtype) - mean), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "members": self.members,
                "act_dim": self.act_dim}  # fmt: skip
