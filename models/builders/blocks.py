"""The building blocks every trunk builder shares (:class:`Blocks`).

Each builder receives a :class:`Blocks` made from the config it builds, so the layer
options (initializer, L1/L2, batch norm, activation, dropout) mean the same in every
architecture and one seed fixes all of their random choices.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from models.config import LayerOptions

_CONVOLUTIONS = {1: (keras.layers.Conv1D, keras.layers.SeparableConv1D),
                 2: (keras.layers.Conv2D, keras.layers.SeparableConv2D)}  # fmt: skip
_POOLING = {
    (1, "max"): keras.layers.MaxPooling1D,
    (1, "avg"): keras.layers.AveragePooling1D,
    (2, "max"): keras.layers.MaxPooling2D,
    (2, "avg"): keras.layers.AveragePooling2D,
}

_INITIALIZERS: dict[str, type[keras.initializers.Initializer]] = {
    "glorot_uniform": keras.initializers.GlorotUniform,
    "glorot_normal": keras.initializers.GlorotNormal,
    "he_uniform": keras.initializers.HeUniform,
    "he_normal": keras.initializers.HeNormal,
    "lecun_normal": keras.initializers.LecunNormal,
}


def member_layer_name(base: str, member: int) -> str:
    """Layer ``base`` of ensemble member ``member`` (member 0 keeps the plain name)."""
    return base if member == 0 else f"m{member}_{base}"


class Blocks:
    """What trunk builders build with: seeded initializers, regularizers, the hidden block.

    Every random choice draws its seed from one generator seeded by the build seed, in
    construction order, so the same seed gives identical initial weights (and dropout masks)
    while no two layers share a seed.

    ``member`` k > 0 builds another member of an ensemble: its generator is seeded by
    (seed, k) and every layer name gets the prefix ``m<k>_`` (:meth:`name`); member 0 is
    exactly the single network the same seed builds.
    """

    def __init__(self, options: LayerOptions, seed: int, member: int = 0) -> None:
        self.options = options
        self.member = member
        self._rng = np.random.default_rng(seed if member == 0 else [seed, member])

    def name(self, base: str) -> str:
        """The layer name ``base`` in this member (builders name every layer through it)."""
        return member_layer_name(base, self.member)

    def seed(self) -> int:
        """A fresh seed for one initializer or dropout layer."""
        return int(self._rng.integers(0, 2**31 - 1))

    def initializer(self, kind: str | None = None) -> keras.initializers.Initializer:
        """A seeded kernel initializer, by default the configured one."""
        return _INITIALIZERS[kind or self.options.initializer](seed=self.seed())

    def regularizer(self) -> keras.regularizers.Regularizer | None:
        """``l1 * sum|w| + l2 * sum w^2`` for one kernel, or None when both are zero."""
        if self.options.l1 == 0.0 and self.options.l2 == 0.0:
            return None
        return keras.regularizers.L1L2(l1=self.options.l1, l2=self.options.l2)

    @property
    def use_bias(self) -> bool:
        """Whether a linear layer feeding a hidden block needs a bias (not when BN follows)."""
        return self.options.batch_norm != "before"

    def convolution(self, rank: int, filters: int, kernel: int, stride: int, separable: bool,
                    name: str) -> keras.layers.Layer:  # fmt: skip
        """A seeded, ``same``-padded convolution over time (``rank`` 1) or an image (2),
        depthwise-separable if asked: a per-channel filter, then the 1x1 channel mix, each
        kernel with its own seed and penalty."""
        plain, split = _CONVOLUTIONS[rank]
        common = {"strides": stride, "padding": "same", "use_bias": self.use_bias, "name": name}
        if separable:
            return split(filters, kernel, depthwise_initializer=self.initializer(),
                         pointwise_initializer=self.initializer(),
                         depthwise_regularizer=self.regularizer(),
                         pointwise_regularizer=self.regularizer(), **common)  # fmt: skip
        return plain(filters, kernel, kernel_initializer=self.initializer(),
                     kernel_regularizer=self.regularizer(), **common)  # fmt: skip

    def pool(self, x: Any, rank: int, name: str) -> Any:
        """The configured pooling (``pooling``, ``pool_size``; same padding), if any."""
        mode = getattr(self.options, "pooling", "none")
        if mode == "none":
            return x
        size = self.options.pool_size  # type: ignore[attr-defined]
        return _POOLING[rank, mode](pool_size=size, padding="same", name=f"{name}_pool")(x)

    def conv_stack(self, x: Any, rank: int) -> Any:
        """The configured convolution blocks (``filters``, ``kernel_sizes``, ``strides``,
        ``separable``): convolution, batch norm/activation, pooling, dropout; layers named
        ``conv_<i>``."""
        options = self.options
        layers = zip(options.filters, options.kernel_sizes, options.strides, strict=True)  # type: ignore[attr-defined]
        for index, (filters, kernel, stride) in enumerate(layers):
            name = self.name(f"conv_{index}")
            separable = options.separable  # type: ignore[attr-defined]
            x = self.convolution(rank, filters, kernel, stride, separable, name)(x)
            x = self.dropout(self.pool(self.activate(x, name), rank, name), name)
        return x

    def dense(self, x: Any, units: int, name: str) -> Any:
        """A complete hidden dense block: linear, batch norm/activation, dropout."""
        x = keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=self.initializer(),
            kernel_regularizer=self.regularizer(),
            name=name,
        )(x)
        return self.dropout(self.activate(x, name), name)

    def activate(self, x: Any, name: str, *, normalized: bool = False) -> Any:
        """The activation, with batch normalization before or after it as configured
        (``normalized``: the input already went through its "before" normalization, as
        a residual sum whose branch did)."""
        if self.options.batch_norm == "before" and not normalized:
            x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        if self.options.activation == "leaky_relu":
            layer = keras.layers.LeakyReLU(
                negative_slope=self.options.leaky_relu_slope, name=f"{name}_act"
            )
        else:
            layer = keras.layers.Activation(self.options.activation, name=f"{name}_act")
        x = layer(x)
        if self.options.batch_norm == "after":
            x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        return x

    def dropout(self, x: Any, name: str) -> Any:
        """Dropout at the configured rate (no layer at all when the rate is 0)."""
        if self.options.dropout > 0.0:
            x = keras.layers.Dropout(self.options.dropout, seed=self.seed(), name=f"{name}_drop")(x)
        return x
