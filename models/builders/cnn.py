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

_POOLING = {"max": keras.layers.MaxPooling1D, "avg": keras.layers.AveragePooling1D}


def _convolution(
    blocks: Blocks, filters: int, kernel: int, stride: int, separable: bool, name: str
) -> keras.layers.Layer:
    common = {"strides": stride, "padding": "same", "use_bias": blocks.use_bias, "name": name}
    if separable:
        # Two kernels (per-channel temporal filter, then the 1x1 channel mix), each with its
        # own seed and penalty.
        return keras.layers.SeparableConv1D(
            filters,
            kernel,
            depthwise_initializer=blocks.initializer(),
            pointwise_initializer=blocks.initializer(),
            depthwise_regularizer=blocks.regularizer(),
            pointwise_regularizer=blocks.regularizer(),
            **common,
        )
    return keras.layers.Conv1D(
        filters,
        kernel,
        kernel_initializer=blocks.initializer(),
        kernel_regularizer=blocks.regularizer(),
        **common,
    )


def build_cnn1d(x: Any, spec: PolicySpec, config: CNN1DConfig, blocks: Blocks) -> Any:
    """Convolution blocks over time, flatten, dense head; returns the last block's output."""
    if spec.history < 2:
        raise ValueError(
            f"cnn1d convolves over an observation history: needs history >= 2, "
            f"the spec has {spec.history}"
        )
    layers = zip(config.filters, config.kernel_sizes, config.strides, strict=True)
    for index, (filters, kernel, stride) in enumerate(layers):
        name = f"conv_{index}"
        x = _convolution(blocks, filters, kernel, stride, config.separable, name)(x)
        x = blocks.activate(x, name)
        if config.pooling != "none":
            pool = _POOLING[config.pooling]
            x = pool(pool_size=config.pool_size, padding="same", name=f"{name}_pool")(x)
        x = blocks.dropout(x, name)
    x = keras.layers.Flatten(name="flatten")(x)
    for index, units in enumerate(config.head_sizes):
        x = blocks.dense(x, units, name=f"head_{index}")
    return x
