"""``mlp``: a multilayer perceptron policy.

Each hidden layer is one block: Dense, then batch normalization before or after the
activation (or none), then dropout. With an observation history (K > 1) the K normalized
observations are flattened side by side, a frame-stacking MLP.
"""

from __future__ import annotations

from typing import Any

import keras

from models.builders.blocks import Blocks
from models.config import MLPConfig
from models.spec import PolicySpec


def build_mlp(x: Any, spec: PolicySpec, config: MLPConfig, blocks: Blocks) -> Any:
    """Hidden dense blocks on the normalized observation; returns the last block's output."""
    if spec.history > 1:
        x = keras.layers.Flatten(name=blocks.name("flatten"))(x)
    for index, units in enumerate(config.hidden_sizes):
        x = blocks.dense(x, units, name=blocks.name(f"hidden_{index}"))
    return x
