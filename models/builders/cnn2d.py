"""``cnn2d``: image convolutions over camera frames, optionally joined with the state.

The frame (``models.registry``) hands this builder the scaled frames, (N, H, W, 3K) with
the last K frames stacked along the channels, and with ``image+state`` the normalized state.
Each convolution block is: Conv2D (or a depthwise-separable one), batch norm/activation as
configured, optional pooling, dropout. Residual blocks (two 3x3 convolutions whose sum with
the block's input goes through the activation, ResNet's basic block) follow. The flattened
features keep where things are in the picture (no global pooling: a pose is a position),
then join the flattened state and feed dense blocks built like the MLP's.
"""

from __future__ import annotations

from typing import Any

import keras

from models.builders.blocks import Blocks
from models.config import CNN2DConfig
from models.spec import IMAGE_INPUT, OBS_INPUT, PolicySpec


def _residual_block(x: Any, blocks: Blocks, channels: int, separable: bool, name: str) -> Any:
    y = blocks.convolution(2, channels, 3, 1, separable, f"{name}_a")(x)
    y = blocks.activate(y, f"{name}_a")
    y = blocks.convolution(2, channels, 3, 1, separable, f"{name}_b")(y)
    if blocks.options.batch_norm == "before":
        y = keras.layers.BatchNormalization(name=f"{name}_b_bn")(y)
    y = keras.layers.Add(name=f"{name}_add")([x, y])
    # The sum goes through the activation (and batch norm "after"), as in ResNet.
    return blocks.dropout(blocks.activate(y, name, normalized=True), name)


def build_cnn2d(x: Any, spec: PolicySpec, config: CNN2DConfig, blocks: Blocks) -> Any:
    """Convolution and residual blocks, flatten, join the state, dense head."""
    if not isinstance(x, dict) or IMAGE_INPUT not in x:
        raise ValueError("cnn2d sees camera frames: the spec has no camera")
    image = blocks.conv_stack(x[IMAGE_INPUT], 2)
    for index in range(config.residual_blocks):
        image = _residual_block(image, blocks, config.filters[-1], config.separable,
                                blocks.name(f"residual_{index}"))  # fmt: skip
    features = keras.layers.Flatten(name=blocks.name("flatten"))(image)
    if OBS_INPUT in x:
        state = x[OBS_INPUT]
        if spec.history > 1:
            state = keras.layers.Flatten(name=blocks.name("state_flatten"))(state)
        features = keras.layers.Concatenate(name=blocks.name("join_state"))([features, state])
    for index, units in enumerate(config.head_sizes):
        features = blocks.dense(features, units, name=blocks.name(f"head_{index}"))
    return features
