"""The fast forward pass rollouts call once per control step.

Measured here for a 44-256-256-17 MLP: ``model.predict`` 45-70 ms per call, an eager call
3.8-5 ms, a ``tf.function`` 0.6-0.9 ms, NumPy 0.02-0.08 ms; a simulation step costs
0.8-2.5 ms. So a policy is *compiled* once into a chain of NumPy operations on its own
weights (:class:`NumpyForward`): no TensorFlow in the rollout workers (importing it costs
seconds and ~600 MB per process), picklable, and any batch size (one row per parallel
environment). Every supported Keras layer maps to one operation in inference mode (dropout
off, batch norm on its moving statistics). :func:`compile_forward` checks the result
against the Keras model itself on probe inputs and refuses to return a forward pass that
disagrees; a model with a layer it does not know falls back to :class:`KerasForward`, a
``tf.function`` with a fixed input signature.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Array = np.ndarray
_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805
# Keras clamps the normalization scale to its backend epsilon (1e-7) from below.
_KERAS_EPSILON = 1e-7


class UnsupportedModelError(ValueError):
    """The model has a layer or a topology the NumPy forward pass does not implement."""


class ForwardMismatchError(RuntimeError):
    """The compiled forward pass disagrees with the Keras model (a bug, never silent)."""


def _erf(x: Array) -> Array:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): NumPy has no erf and float32 needs no
    # better. Exact GELU = 0.5 x (1 + erf(x / sqrt 2)), Keras' default.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                + t * 1.061405429))))  # fmt: skip
    return sign * (1.0 - poly * np.exp(-a * a))


def _sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form of 1 / (1 + exp(-x))


_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
}


@dataclass(frozen=True)
class Op:
    """One step of a compiled forward pass: a kind plus its float32 arrays and settings."""

    kind: str
    arrays: dict[str, Array] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def _pad_same(length: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output length and (left, right) padding of TensorFlow's ``same`` padding."""
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return out, total // 2, total - total // 2


def _frames(x: Array, kernel: int, stride: int, padding: str, fill: float) -> Array:
    """Sliding windows (N, L_out, kernel, C) of a sequence (N, L, C)."""
    length = x.shape[1]
    if padding == "same":
        out, left, right = _pad_same(length, kernel, stride)
        x = np.pad(x, ((0, 0), (left, right), (0, 0)), constant_values=fill)
    else:
        out = (length - kernel) // stride + 1
    index = np.arange(out)[:, None] * stride + np.arange(kernel)[None, :]
    return x[:, index, :]


def _conv1d(x: Array, kernel: Array, stride: int, padding: str) -> Array:
    frames = _frames(x, kernel.shape[0], stride, padding, 0.0)  # (N, L, k, C)
    return np.einsum("nlkc,kcf->nlf", frames, kernel, optimize=True)


def _depthwise1d(x: Array, kernel: Array, stride: int, padding: str) -> Array:
    frames = _frames(x, kernel.shape[0], stride, padding, 0.0)  # (N, L, k, C)
    out = np.einsum("nlkc,kcm->nlcm", frames, kernel, optimize=True)
    return out.reshape(out.shape[0], out.shape[1], -1)  # channel-major, as Keras orders it


def _pool1d(x: Array, size: int, stride: int, padding: str, mode: str) -> Array:
    if mode == "max":
        return _frames(x, size, stride, padding, -np.inf).max(axis=2)
    # TensorFlow's same-padded average excludes the padding from the count.
    sums = _frames(x, size, stride, padding, 0.0).sum(axis=2)
    counts = _frames(np.ones_like(x[:1, :, :1]), size, stride, padding, 0.0).sum(axis=2)
    return sums / counts


def _windows2d(x: Array, kernel: tuple[int, int], stride: tuple[int, int], padding: str,
               fill: float) -> Array:  # fmt: skip
    """Sliding windows (N, H_out, W_out, kh, kw, C) of images (N, H, W, C)."""
    index = []
    pads = [(0, 0)]
    for axis in (0, 1):
        length, k, st = x.shape[1 + axis], kernel[axis], stride[axis]
        if padding == "same":
            out, left, right = _pad_same(length, k, st)
            pads.append((left, right))
        else:
            out = (length - k) // st + 1
            pads.append((0, 0))
        index.append(np.arange(out)[:, None] * st + np.arange(k)[None, :])
    if padding == "same":
        x = np.pad(x, [*pads, (0, 0)], constant_values=fill)
    rows, cols = index
    return x[:, rows[:, None, :, None], cols[None, :, None, :], :]


def _pool2d(x: Array, size: tuple[int, int], stride: tuple[int, int], padding: str,
            mode: str) -> Array:  # fmt: skip
    if mode == "max":
        return _windows2d(x, size, stride, padding, -np.inf).max(axis=(3, 4))
    # As in 1D: TensorFlow's same-padded average counts only the real pixels.
    sums = _windows2d(x, size, stride, padding, 0.0).sum(axis=(3, 4))
    counts = _windows2d(np.ones_like(x[:1, :, :, :1]), size, stride, padding, 0.0).sum(axis=(3, 4))
    return sums / counts


def _apply(op: Op, x: Array) -> Array:
    a, s = op.arrays, op.settings
    if op.kind == "affine":  # normalization, inverted normalization, inference batch norm
        return x * a["scale"] + a["shift"]
    if op.kind == "dense":
        x = x @ a["kernel"]
        return x + a["bias"] if "bias" in a else x
    if op.kind == "activation":
        return _ACTIVATIONS[s["name"]](x)
    if op.kind == "leaky_relu":
        return np.where(x > 0, x, s["slope"] * x)
    if op.kind == "flatten":
        return x.reshape(x.shape[0], -1)
    if op.kind == "conv1d":
        x = _conv1d(x, a["kernel"], s["stride"], s["padding"])
        return x + a["bias"] if "bias" in a else x
    if op.kind == "separable_conv1d":
        x = _depthwise1d(x, a["depthwise"], s["stride"], s["padding"])
        x = x @ a["pointwise"]
        return x + a["bias"] if "bias" in a else x
    if op.kind == "pool1d":
        return _pool1d(x, s["size"], s["stride"], s["padding"], s["mode"])
    if op.kind == "conv2d":
        windows = _windows2d(x, a["kernel"].shape[:2], s["stride"], s["padding"], 0.0)
        x = np.einsum("nhwijc,ijcf->nhwf", windows, a["kernel"], optimize=True)
        return x + a["bias"] if "bias" in a else x
    if op.kind == "depthwise2d":
        windows = _windows2d(x, a["depthwise"].shape[:2], s["stride"], s["padding"], 0.0)
        x = np.einsum("nhwijc,ijcm->nhwcm", windows, a["depthwise"], optimize=True)
        x = x.reshape(*x.shape[:3], -1)  # channel-major, as Keras orders it
        if "pointwise" in a:  # separable: the 1x1 convolution that mixes the channels
            x = x @ a["pointwise"]
        return x + a["bias"] if "bias" in a else x
    if op.kind == "pool2d":
        return _pool2d(x, s["size"], s["stride"], s["padding"], s["mode"])
    if op.kind == "global_pool":
        axes = tuple(range(1, x.ndim - 1))
        return x.max(axis=axes) if s["mode"] == "max" else x.mean(axis=axes)
    raise AssertionError(f"unknown op {op.kind}")


@dataclass(frozen=True)
class NumpyForward:
    """A policy's inference-mode forward pass in NumPy: ``(N, *obs_shape) -> (N, act_dim)``.

    Plain arrays only, so it pickles cheaply into rollout workers and needs no TensorFlow.
    """

    ops: tuple[Op, ...]
    input_shape: tuple[int, ...]
    output_dim: int

    def __call__(self, obs: Array) -> Array:
        x = np.asarray(obs, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"expected observations (N, {self.input_shape}), got {x.shape}")
        for op in self.ops:
            x = _apply(op, x)
        return x.astype(np.float32, copy=False)


def _weights(layer: Any, *names: str) -> list[Array]:
    return [np.asarray(getattr(layer, name).numpy(), dtype=np.float32) for name in names]


def _activation_op(function: Any, layer_name: str) -> Op | None:
    name = getattr(function, "__name__", str(function))
    if name not in _ACTIVATIONS:
        raise UnsupportedModelError(f"layer {layer_name}: activation {name!r} is not supported")
    return None if name == "linear" else Op("activation", settings={"name": name})


def _normalization_op(layer: Any) -> Op:
    mean = np.asarray(layer.mean, dtype=np.float64)
    std = np.maximum(np.sqrt(np.asarray(layer.variance, dtype=np.float64)), _KERAS_EPSILON)
    if layer.invert:
        scale, shift = std, mean
    else:
        scale, shift = 1.0 / std, -mean / std
    f32 = np.float32
    return Op("affine", {"scale": scale.astype(f32).ravel(), "shift": shift.astype(f32).ravel()})


def _batch_norm_op(layer: Any) -> Op:
    rank = len(layer.input.shape)
    if layer.axis not in (-1, rank - 1):
        raise UnsupportedModelError(f"layer {layer.name}: batch norm over axis {layer.axis}")
    mean, var = (v.astype(np.float64) for v in _weights(layer, "moving_mean", "moving_variance"))
    gamma = _weights(layer, "gamma")[0].astype(np.float64) if layer.scale else 1.0
    beta = _weights(layer, "beta")[0].astype(np.float64) if layer.center else 0.0
    scale = gamma / np.sqrt(var + layer.epsilon)
    shift = beta - mean * scale
    return Op("affine", {"scale": scale.astype(np.float32), "shift": shift.astype(np.float32)})


def _conv_settings(layer: Any, rank: int) -> dict[str, Any]:
    """Stride (an int in 1D, a pair in 2D) and padding of a supported convolution."""
    if any(int(v) != 1 for v in np.atleast_1d(layer.dilation_rate)):
        raise UnsupportedModelError(f"layer {layer.name}: dilated convolutions")
    if layer.padding not in ("same", "valid") or layer.data_format != "channels_last":
        raise UnsupportedModelError(f"layer {layer.name}: padding/data format not supported")
    strides = tuple(int(v) for v in np.broadcast_to(layer.strides, (rank,)))
    return {"stride": strides[0] if rank == 1 else strides, "padding": layer.padding}


def _image_layer_ops(layer: Any, kind: str) -> list[Op] | None:
    """Ops of the 2D (image) layers without bias or activation, None for other layers."""
    if kind == "Rescaling":  # pixel scaling inside the model: x * scale + offset
        scale = np.asarray(layer.scale, np.float32)
        return [Op("affine", {"scale": scale, "shift": np.asarray(layer.offset, np.float32)})]
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        if layer.data_format != "channels_last":
            raise UnsupportedModelError(f"layer {layer.name}: data format {layer.data_format}")
        size = tuple(int(v) for v in np.broadcast_to(layer.pool_size, (2,)))
        stride = tuple(int(v) for v in np.broadcast_to(layer.strides, (2,)))
        settings = {"size": size, "stride": stride, "padding": layer.padding,
                    "mode": "max" if kind == "MaxPooling2D" else "avg"}  # fmt: skip
        return [Op("pool2d", settings=settings)]
    if kind in ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
                "GlobalMaxPooling2D"):  # fmt: skip
        if layer.data_format != "channels_last" or layer.keepdims:
            raise UnsupportedModelError(f"layer {layer.name}: data format or keepdims")
        return [Op("global_pool", settings={"mode": "max" if "Max" in kind else "avg"})]
    return None


def _layer_ops(layer: Any) -> list[Op]:
    """The ops of one Keras layer (empty for layers that do nothing at inference)."""
    kind = type(layer).__name__
    if kind in ("InputLayer", "Dropout", "GaussianNoise", "GaussianDropout"):
        return []
    if kind == "Normalization":
        return [_normalization_op(layer)]
    if kind == "BatchNormalization":
        return [_batch_norm_op(layer)]
    if kind == "Activation":
        return [op for op in [_activation_op(layer.activation, layer.name)] if op]
    if kind == "LeakyReLU":
        return [Op("leaky_relu", settings={"slope": float(layer.negative_slope)})]
    if kind == "Flatten":
        return [Op("flatten")]
    image_ops = _image_layer_ops(layer, kind)
    if image_ops is not None:
        return image_ops
    ops: list[Op]
    if kind == "Dense":
        arrays = {"kernel": _weights(layer, "kernel")[0]}
        ops = [Op("dense", arrays)]
    elif kind in ("Conv1D", "Conv2D"):
        if layer.groups != 1:
            raise UnsupportedModelError(f"layer {layer.name}: grouped convolutions")
        arrays = {"kernel": _weights(layer, "kernel")[0]}
        rank = 1 if kind == "Conv1D" else 2
        ops = [Op(f"conv{rank}d", arrays, _conv_settings(layer, rank))]
    elif kind == "SeparableConv1D":
        depthwise, pointwise = _weights(layer, "depthwise_kernel", "pointwise_kernel")
        arrays = {"depthwise": depthwise, "pointwise": pointwise[0]}
        ops = [Op("separable_conv1d", arrays, _conv_settings(layer, 1))]
    elif kind in ("DepthwiseConv2D", "SeparableConv2D"):
        if kind == "SeparableConv2D":
            depthwise, pointwise = _weights(layer, "depthwise_kernel", "pointwise_kernel")
            arrays = {"depthwise": depthwise, "pointwise": pointwise[0, 0]}
        else:
            arrays = {"depthwise": _weights(layer, "kernel")[0]}
        ops = [Op("depthwise2d", arrays, _conv_settings(layer, 2))]
    elif kind in ("MaxPooling1D", "AveragePooling1D"):
        if layer.data_format != "channels_last":
            raise UnsupportedModelError(f"layer {layer.name}: data format {layer.data_format}")
        settings = {"size": int(np.atleast_1d(layer.pool_size)[0]),
                    "stride": int(np.atleast_1d(layer.strides)[0]), "padding": layer.padding,
                    "mode": "max" if kind == "MaxPooling1D" else "avg"}  # fmt: skip
        return [Op("pool1d", settings=settings)]
    else:
        raise UnsupportedModelError(f"layer {layer.name}: {kind} is not supported")
    if layer.use_bias:
        ops[0].arrays["bias"] = _weights(layer, "bias")[0]
    activation = _activation_op(layer.activation, layer.name)
    return ops + ([activation] if activation else [])


def _chain(model: Any) -> list[Any]:
    """The model's layers in order, checking that each feeds only the next (no branches)."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    previous = model.inputs[0]
    for layer in layers:
        if len(layer._inbound_nodes) != 1:
            raise UnsupportedModelError(f"layer {layer.name} is shared or called twice")
        inputs = layer._inbound_nodes[0].input_tensors
        if len(inputs) != 1 or inputs[0] is not previous:
            raise UnsupportedModelError(f"layer {layer.name}: only single-chain models")
        previous = layer.output
    if previous is not model.outputs[0]:
        raise UnsupportedModelError("the model's output is not its last layer's output")
    return layers


def probe_inputs(model: Any, rows: int = 64, seed: int = 0) -> Array:
    """Inputs in the range a policy sees: the observation statistics when the first layer
    normalizes, standard normal otherwise (seeded)."""
    rng = np.random.default_rng(seed)
    shape = tuple(model.inputs[0].shape[1:])
    x = rng.standard_normal((rows, *shape))
    first = next((layer for layer in model.layers if type(layer).__name__ != "InputLayer"), None)
    if first is not None and type(first).__name__ == "Normalization" and not first.invert:
        mean = np.asarray(first.mean, np.float64).reshape(shape[-1:])
        std = np.sqrt(np.asarray(first.variance, np.float64)).reshape(shape[-1:])
        x = mean + std * x
    return x.astype(np.float32)


def compile_numpy(model: Any, *, check: bool = True) -> NumpyForward:
    """Compile a single-input, single-chain Keras policy into a :class:`NumpyForward`.

    With ``check`` (default), the result is compared against ``model(x, training=False)`` on
    :func:`probe_inputs`; a relative disagreement above 1e-4 raises ``ForwardMismatchError``.
    Raises ``UnsupportedModelError`` for layers or topologies it does not implement.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedModelError("only models with one input and one output")
    ops = tuple(op for layer in _chain(model) for op in _layer_ops(layer))
    forward = NumpyForward(ops, tuple(model.inputs[0].shape[1:]), int(model.outputs[0].shape[-1]))
    if check:
        x = probe_inputs(model)
        expected = np.asarray(model(x, training=False), dtype=np.float64)
        error = np.abs(forward(x) - expected).max() / (np.abs(expected).max() + 1e-6)
        if not error <= 1e-4:
            raise ForwardMismatchError(
                f"NumPy forward pass differs from Keras by {error:.2e} (relative)"
            )
    return forward


class KerasForward:
    """A Keras policy behind a ``tf.function`` with a fixed input signature (batch size free).

    The fallback for models :func:`compile_numpy` does not support, and the baseline of the
    inference benchmark. Not picklable: build it in the process that uses it.
    """

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        self.model = model
        self.input_shape = tuple(model.inputs[0].shape[1:])
        self.output_dim = int(model.outputs[0].shape[-1])
        signature = [tf.TensorSpec((None, *self.input_shape), tf.float32)]
        self._call = tf.function(lambda x: model(x, training=False), input_signature=signature)

    def __call__(self, obs: Array) -> Array:
        return self._call(np.asarray(obs, dtype=np.float32)).numpy()


def compile_forward(model: Any) -> NumpyForward | KerasForward:
    """The fastest correct forward pass for ``model``: NumPy when supported, else TF."""
    try:
        return compile_numpy(model)
    except UnsupportedModelError:
        return KerasForward(model)
