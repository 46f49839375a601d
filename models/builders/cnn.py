"""``cnn1d``: temporal convolutions over the last K observations, then a dense head.

The input (N, K, obs_dim) is read as a length-K sequence with obs_dim channels. Each
convolution block is: Conv1D (or a depthwise-separable one), batch norm/activation as
configured, optional pooling, dropout. ``same`` padding keeps short histories valid for any
kernel; the flattened features feed dense blocks built like the MLP's.
"""

from __future__ import annotations

from typing import Any

import keras

from models.builders.blocks import Blocks
from models.config import CNN1DConfig
from models.spec import PolicySpec


def build_cnn1d(x: Any, spec: PolicySpec, config: CNN1DConfig, blocks: Blocks) -> Any:
    """Convolution blocks over time, flatten, dense head; returns the last block's output."""
    if spec.history < 2:
        raise ValueError(
            f"cnn1d convolves over an observation history: needs history >= 2, "
            f"the spec has {spec.history}"
        )
    x = blocks.conv_stack(x, 1)
    x = keras.layers.Flatten(name=blocks.name("flatten"))(x)
    for index, units in enumerate(config.head_sizes):
        x = blocks.dense(x, units, name=blocks.name(f"head_{index}"))
    return x
