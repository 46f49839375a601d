"""The fast forward pass rollouts call once per control step.

Measured here for a 44-256-256-17 MLP: ``model.predict`` 45-70 ms per call, an eager call
3.8-5 ms, a ``tf.function`` 0.6-0.9 ms, NumPy 0.02-0.08 ms; a simulation step costs
0.8-2.5 ms. So a policy is *compiled* once into a chain of NumPy operations on its own
weights (:class:`NumpyForward`): no TensorFlow in the rollout workers (importing it costs
seconds and ~600 MB per process), picklable, and any batch size (one row per parallel
environment). Every supported Keras layer maps to one operation in inference mode (dropout
off, batch norm on its moving statistics); the layers run in graph order, so several inputs
(camera frames and state), residual sums and joins compile too. :func:`compile_forward`
checks the result against the Keras model itself on probe inputs and refuses to return a
forward pass that disagrees; a model with a layer it does not know falls back to
:class:`KerasForward`, a ``tf.function`` with a fixed input signature.
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
    if op.kind == "reshape":
        return x.reshape(x.shape[0], *s["shape"])
    if op.kind == "permute":
        return np.transpose(x, (0, *s["axes"]))
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


def _merge(op: Op, xs: list[Array]) -> Array:
    if op.kind == "concat":  # the last axis only (checked when compiling)
        return np.concatenate(xs, axis=-1)
    if op.kind == "add":
        return np.sum(xs, axis=0)
    if op.kind == "mean":
        return np.mean(xs, axis=0)
    raise AssertionError(f"unknown merge op {op.kind}")


@dataclass(frozen=True)
class Step:
    """One layer of a compiled graph: its ops, the values it reads and the value it writes."""

    ops: tuple[Op, ...]
    sources: tuple[int, ...]
    """Indices of the values read (model inputs first, then each step's output)."""


@dataclass(frozen=True)
class NumpyForward:
    """A policy's inference-mode forward pass in NumPy: ``(N, *input_shape), ... ->
    (N, act_dim)``, one array per model input in the model's order.

    Plain arrays only, so it pickles cheaply into rollout workers and needs no TensorFlow.
    Step ``i`` writes value ``len(input_shapes) + i``; the last step's value is the output.
    """

    steps: tuple[Step, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_dim: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of the first (for most policies the only) input."""
        return self.input_shapes[0]

    def __call__(self, *inputs: Array) -> Array:
        if len(inputs) != len(self.input_shapes):
            raise ValueError(f"expected {len(self.input_shapes)} input(s), got {len(inputs)}")
        values = []
        for x, shape in zip(inputs, self.input_shapes, strict=True):
            x = np.asarray(x, dtype=np.float32)
            if x.shape[1:] != shape:
                raise ValueError(f"expected inputs (N, {shape}), got {x.shape}")
            values.append(x)
        for step in self.steps:
            ops = step.ops
            if len(step.sources) > 1:
                x, ops = _merge(ops[0], [values[i] for i in step.sources]), ops[1:]
            else:
                x = values[step.sources[0]]
            for op in ops:
                x = _apply(op, x)
            values.append(x)
        return values[-1].astype(np.float32, copy=False)


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
    if kind == "Reshape":
        return [Op("reshape", settings={"shape": tuple(int(v) for v in layer.target_shape)})]
    if kind == "Permute":
        return [Op("permute", settings={"axes": tuple(int(v) for v in layer.dims)})]
    if kind == "Add":
        return [Op("add")]
    if kind == "Average":
        return [Op("mean")]
    if kind == "Concatenate":
        if layer.axis not in (-1, len(layer.output.shape) - 1):
            raise UnsupportedModelError(f"layer {layer.name}: concatenation over axis {layer.axis}")
        return [Op("concat")]
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


def _graph(model: Any) -> list[Step]:
    """The model's layers as steps in an order where every value is made before it is read;
    each layer must be called once (no shared layers) and the output be the last value."""
    slots = {id(tensor): index for index, tensor in enumerate(model.inputs)}
    steps = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if len(layer._inbound_nodes) != 1:
            raise UnsupportedModelError(f"layer {layer.name} is shared or called twice")
        inputs = layer._inbound_nodes[0].input_tensors
        if any(id(tensor) not in slots for tensor in inputs):
            raise UnsupportedModelError(f"layer {layer.name}: its inputs come later")
        ops = tuple(_layer_ops(layer))
        if len(inputs) > 1 and (not ops or ops[0].kind not in ("add", "mean", "concat")):
            raise UnsupportedModelError(f"layer {layer.name}: several inputs")
        steps.append(Step(ops, tuple(slots[id(tensor)] for tensor in inputs)))
        slots[id(layer.output)] = len(model.inputs) + len(steps) - 1
    if not steps or slots.get(id(model.outputs[0])) != len(model.inputs) + len(steps) - 1:
        raise UnsupportedModelError("the model's output is not its last layer's output")
    return steps


def probe_inputs(model: Any, rows: int = 64, seed: int = 0) -> list[Array]:
    """One array per model input in the range a policy sees (seeded): random pixels for
    uint8 (image) inputs; for others the observation statistics when the input feeds a
    normalization layer, standard normal otherwise."""
    rng = np.random.default_rng(seed)
    consumers: dict[int, Any] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                consumers.setdefault(id(tensor), layer)
    probes = []
    for tensor in model.inputs:
        shape = tuple(tensor.shape[1:])
        if "int" in str(tensor.dtype):
            probes.append(rng.integers(0, 256, (rows, *shape)).astype(np.float32))
            continue
        x = rng.standard_normal((rows, *shape))
        first = consumers.get(id(tensor))
        if first is not None and type(first).__name__ == "Normalization" and not first.invert:
            mean = np.asarray(first.mean, np.float64).reshape(shape[-1:])
            std = np.sqrt(np.asarray(first.variance, np.float64)).reshape(shape[-1:])
            x = mean + std * x
        probes.append(x.astype(np.float32))
    return probes


def _model_call(model: Any, inputs: list[Array]) -> Array:
    """``model(inputs, training=False)`` with one array for a single-input model."""
    return model(inputs[0] if len(inputs) == 1 else inputs, training=False)


def compile_numpy(model: Any, *, check: bool = True) -> NumpyForward:
    """Compile a Keras policy (one output; several inputs, residual sums and joins allowed)
    into a :class:`NumpyForward`.

    With ``check`` (default), the result is compared against ``model(x, training=False)`` on
    :func:`probe_inputs`; a relative disagreement above 1e-4 raises ``ForwardMismatchError``.
    Raises ``UnsupportedModelError`` for layers or topologies it does not implement.
    """
    if len(model.outputs) != 1:
        raise UnsupportedModelError("only models with one output")
    shapes = tuple(tuple(tensor.shape[1:]) for tensor in model.inputs)
    forward = NumpyForward(tuple(_graph(model)), shapes, int(model.outputs[0].shape[-1]))
    if check:
        x = probe_inputs(model)
        expected = np.asarray(_model_call(model, x), dtype=np.float64)
        error = np.abs(forward(*x) - expected).max() / (np.abs(expected).max() + 1e-6)
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
        self.input_shapes = tuple(tuple(tensor.shape[1:]) for tensor in model.inputs)
        self.output_dim = int(model.outputs[0].shape[-1])
        signature = [tf.TensorSpec((None, *shape), tf.float32) for shape in self.input_shapes]
        self._call = tf.function(lambda *x: _model_call(model, list(x)),
                                 input_signature=signature)  # fmt: skip

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of the first (for most policies the only) input."""
        return self.input_shapes[0]

    def __call__(self, *inputs: Array) -> Array:
        return self._call(*(np.asarray(x, dtype=np.float32) for x in inputs)).numpy()


def compile_forward(model: Any) -> NumpyForward | KerasForward:
    """The fastest correct forward pass for ``model``: NumPy when supported, else TF."""
    try:
        return compile_numpy(model)
    except UnsupportedModelError:
        return KerasForward(model)
