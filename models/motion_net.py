"""The motion network of the course's imitation lab: phase -> joint angles of a clip's pose.

One input (the time within the motion's cycle, as a phase in [0, 1]), the hidden blocks
every architecture here shares (:class:`~models.builders.blocks.Blocks`: the same
activation, initializer and regularization options), a linear output of one number per
joint coordinate. No normalization layers: the phase is already in [0, 1] and the joint
coordinates (unit quaternions, angles in radians) are of order one, as in the lab.
"""

from __future__ import annotations

from typing import Any

import keras

from models.builders.blocks import Blocks
from models.config import MotionNetConfig

PHASE_INPUT = "phase"
OUTPUT_LAYER = "joints"


def build_motion_net(config: MotionNetConfig, outputs: int, seed: int) -> Any:
    """A Keras model mapping (N, 1) phases to (N, ``outputs``) joint coordinates."""
    blocks = Blocks(config, seed)
    phase = keras.Input(shape=(1,), name=PHASE_INPUT)
    x = phase
    for index, units in enumerate(config.hidden_sizes):
        x = blocks.dense(x, units, name=f"hidden_{index}")
    joints = keras.layers.Dense(
        outputs,
        kernel_initializer=blocks.initializer("glorot_uniform"),
        kernel_regularizer=blocks.regularizer(),
        name=OUTPUT_LAYER,
    )(x)
    return keras.Model(phase, joints, name="motion_net")
