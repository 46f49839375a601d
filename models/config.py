"""Typed, validated configurations of the policy architectures (pydantic v2).

Each architecture has one config class whose ``name`` is its registry key; ``ModelConfig`` is
their union, discriminated by ``name``, so a YAML mapping such as ``{name: cnn1d, filters: [32]}``
validates into the right class. This module imports neither Keras nor TensorFlow, so a command
line can validate a config (and fail fast on a typo) before paying TensorFlow's start-up cost.

Unknown keys are errors that name the key and the closest valid one; :func:`format_validation_error`
turns any pydantic error into the one line a command-line tool prints.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

Activation = Literal["relu", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid"]
Initializer = Literal["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal"]
BatchNorm = Literal["none", "before", "after"]
Pooling = Literal["none", "max", "avg"]
Loss = Literal["mse", "huber", "gaussian_nll"]

ACTIVATIONS: tuple[str, ...] = Activation.__args__
INITIALIZERS: tuple[str, ...] = Initializer.__args__
BATCH_NORM_MODES: tuple[str, ...] = BatchNorm.__args__
POOLINGS: tuple[str, ...] = Pooling.__args__
LOSSES: tuple[str, ...] = Loss.__args__

UNKNOWN_KEY = "unknown_key"
"""Error type raised for a key that is not a field (carries ``key`` and ``suggestion``)."""


class StrictConfig(BaseModel):
    """Base of every config: unknown keys are errors, fields are documented and immutable.

    Defaults are validated too, so a default given as plain data (e.g. ``{"name": "mlp"}`` for
    a ``ModelConfig`` field) becomes the config object it describes.

    Pydantic's own ``extra="forbid"`` error names the key but cannot suggest the intended one,
    so a before-validator reports unknown keys first, with the closest valid key in the error's
    context; ``extra="forbid"`` stays as the backstop.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, validate_default=True
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        known = set(cls.model_fields)
        unknown = [key for key in data if key not in known]
        if unknown:
            key = str(unknown[0])
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise PydanticCustomError(
                UNKNOWN_KEY,
                "unknown key {key!r}" + (", did you mean {suggestion!r}?" if close else ""),
                {"key": key, "suggestion": close[0] if close else None},
            )
        return data


class LayerOptions(StrictConfig):
    """Options shared by every architecture: activation, initialization, regularization, loss."""

    activation: Activation = "relu"
    """Nonlinearity of the hidden layers; the output layer is always linear."""
    leaky_relu_slope: float = Field(0.2, gt=0.0, lt=1.0)
    """Slope for negative inputs when ``activation`` is ``leaky_relu`` (Keras' default 0.2)."""
    initializer: Initializer = "glorot_uniform"
    """Kernel initializer of the hidden layers (Glorot for tanh/sigmoid, He for the ReLU
    family, LeCun normal for SELU). The linear output layer always uses Glorot uniform, the
    match for an identity activation. Biases start at zero."""
    batch_norm: BatchNorm = "none"
    """Batch normalization in every hidden block: ``before`` or ``after`` the activation, or
    ``none``. With ``before`` the preceding layer has no bias (BN's shift replaces it)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Fraction of a hidden block's outputs zeroed during training (inverted dropout: the
    kept ones are scaled by 1/(1-rate)); 0 disables dropout."""
    l1: float = Field(0.0, ge=0.0)
    """L1 penalty coefficient on every kernel (hidden and output); 0 disables it."""
    l2: float = Field(0.0, ge=0.0)
    """L2 penalty coefficient on every kernel (hidden and output); 0 disables it."""
    loss: Loss = "mse"
    """Training loss on z-scored actions: mean squared error, Huber, or gaussian_nll (the
    log-likelihood under a Gaussian whose per-dimension spread is learned beside the mean;
    the policy acts with the mean)."""
    huber_delta: float = Field(1.0, gt=0.0)
    """Huber's switch point from quadratic to linear, in z-scored action units."""
    ensemble: int = Field(1, ge=1, le=16)
    """Members of an ensemble: the network (trunk and output layer) built this many times
    from different initial weights on the same normalized input, each fitted to the
    targets on its own loss (the training loss is their mean); the policy acts with the
    mean of their actions. Averaging cancels much of what one fit gets wrong by the luck of
    its initialization, at about ``ensemble`` times the training and inference cost.
    Not with the ``gaussian_nll`` loss."""

    @model_validator(mode="after")
    def _ensemble_of_point_losses(self) -> LayerOptions:
        if self.ensemble > 1 and self.loss == "gaussian_nll":
            raise ValueError("ensemble > 1 needs a point loss (mse or huber), not gaussian_nll")
        return self


PositiveInt = Annotated[int, Field(gt=0)]


def _non_empty(values: list[int]) -> list[int]:
    if not values:
        raise ValueError("must list at least one layer")
    return values


class MLPConfig(LayerOptions):
    """A multilayer perceptron on the (flattened) normalized observation."""

    name: Literal["mlp"] = "mlp"
    """Registry key of the architecture."""
    hidden_sizes: list[PositiveInt] = Field(default_factory=lambda: [256, 256])
    """Units of each hidden layer, input side first; at least one layer."""

    _check_hidden_sizes = field_validator("hidden_sizes")(_non_empty)


class ConvStackOptions(LayerOptions):
    """What every convolutional architecture shares: the convolution stack and dense head.

    A single number for ``kernel_sizes`` or ``strides`` is repeated for every convolution;
    otherwise each needs one entry per ``filters`` entry.
    """

    filters: list[PositiveInt] = Field(default_factory=lambda: [64, 64])
    """Output channels of each convolution, input side first; at least one."""
    kernel_sizes: list[PositiveInt] = Field(default_factory=lambda: [3, 3])
    """Kernel size of each convolution (time steps in 1D, a square's side in 2D), one entry
    per ``filters`` entry; a single number is repeated for every convolution."""
    strides: list[PositiveInt] = Field(default_factory=lambda: [1, 1])
    """Stride of each convolution, one entry per ``filters`` entry; a single number is
    repeated for every convolution."""
    pooling: Pooling = "none"
    """Pooling after each convolution block: ``max``, ``avg`` or ``none``."""
    pool_size: PositiveInt = 2
    """Window and stride of the pooling layers."""
    separable: bool = False
    """Use depthwise-separable convolutions (a per-channel filter, then a 1x1 convolution
    mixing channels): far fewer weights for the same receptive field."""
    head_sizes: list[PositiveInt] = Field(default_factory=lambda: [256])
    """Units of the dense layers after the flattened convolution features (may be empty)."""

    _check_filters = field_validator("filters")(_non_empty)

    @model_validator(mode="before")
    @classmethod
    def _repeat_single_numbers(cls, data: Any) -> Any:
        # "kernel_sizes: 5" is the common case and reads better than a list that must be
        # kept as long as ``filters``; expand it here so the stored config is explicit.
        if not isinstance(data, Mapping):
            return data
        filters = data.get("filters", cls._default("filters"))
        if not isinstance(filters, list | tuple):
            return data
        data = dict(data)
        for field in ("kernel_sizes", "strides"):
            value = data.get(field)
            if value is None:  # absent: the default, its last entry repeated if need be
                default = cls._default(field)
                value = default if len(default) == len(filters) else default[-1]
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value] * len(filters)
            data[field] = value
        return data

    @classmethod
    def _default(cls, field: str) -> Any:
        return cls.model_fields[field].get_default(call_default_factory=True)

    @model_validator(mode="after")
    def _check_lengths(self) -> ConvStackOptions:
        for field in ("kernel_sizes", "strides"):
            value = getattr(self, field)
            if len(value) != len(self.filters):
                raise ValueError(
                    f"{field} needs one entry per filters entry "
                    f"({len(value)} given, {len(self.filters)} expected)"
                )
        return self


class CNN1DConfig(ConvStackOptions):
    """Temporal 1-D convolutions over the last K observations, then a dense head.

    Convolutions use ``same`` padding, so any history length K >= 2 fits any kernel; strides
    and pooling shorten the time axis (rounding up) down to a minimum of one step.
    """

    name: Literal["cnn1d"] = "cnn1d"
    """Registry key of the architecture."""


ImageInputs = Literal["image", "image+state"]


class CNN2DConfig(ConvStackOptions):
    """Image convolutions over camera frames, optionally fused with the state vector.

    Frames enter as raw uint8 pixels and are scaled inside the model (``pixel_scale``), so
    a saved policy maps raw frames and observations to raw actions. With a history of K the
    last K frames are stacked along the colour channels (3K channels). Each convolution block
    is: Conv2D (or a depthwise-separable one), batch norm/activation, optional pooling,
    dropout; ``residual_blocks`` add blocks of two 3x3 convolutions with a skip connection.
    The features are flattened and, with ``image+state``, joined with the normalized state
    before the dense head. Convolutions use ``same`` padding.
    """

    name: Literal["cnn2d"] = "cnn2d"
    """Registry key of the architecture."""
    inputs: ImageInputs = "image+state"
    """What the policy sees: camera frames alone (``image``) or frames and the state
    observation (``image+state``)."""
    filters: list[PositiveInt] = Field(default_factory=lambda: [16, 32, 32])
    """Output channels of each convolution, input side first; at least one."""
    kernel_sizes: list[PositiveInt] = Field(default_factory=lambda: [5, 3, 3])
    """Square kernel side of each convolution, one entry per ``filters`` entry; a single
    number is repeated for every convolution."""
    strides: list[PositiveInt] = Field(default_factory=lambda: [2, 2, 2])
    """Stride of each convolution, one entry per ``filters`` entry; a single number is
    repeated for every convolution."""
    residual_blocks: int = Field(0, ge=0)
    """Residual blocks after the convolutions: each is two 3x3 convolutions keeping the
    channel count, added to the block's input (ResNet's basic block)."""
    pixel_scale: Literal["unit", "symmetric"] = "unit"
    """Pixel scaling inside the model: ``unit`` maps 0..255 to [0, 1], ``symmetric`` to
    [-1, 1]."""


class MotionNetConfig(LayerOptions):
    """A network from the time within a motion's cycle (one input, the phase in [0, 1]) to the
    joint angles of the pose at that time: the course's motion-imitation lab.

    The defaults are the lab's: Dense 75 and 50 with leaky ReLU (slope 0.01), a linear output,
    Keras' default Glorot-uniform initialization."""

    hidden_sizes: list[PositiveInt] = Field(default_factory=lambda: [75, 50])
    """Units of each hidden layer, input side first; at least one layer."""
    activation: Activation = "leaky_relu"
    """Nonlinearity of the hidden layers; the output layer is always linear."""
    leaky_relu_slope: float = Field(0.01, gt=0.0, lt=1.0)
    """Slope for negative inputs when ``activation`` is ``leaky_relu`` (the lab's 0.01)."""

    _check_hidden_sizes = field_validator("hidden_sizes")(_non_empty)


PolicyConfig = MLPConfig | CNN1DConfig | CNN2DConfig
"""Any architecture's config object."""
ModelConfig = Annotated[PolicyConfig, Field(discriminator="name")]
"""Field type for embedding a model config in a larger config (discriminated by ``name``)."""

_MODEL_CONFIG = TypeAdapter(ModelConfig)


def config_inputs(config: LayerOptions) -> str:
    """What a config's architecture sees: ``state``, ``image`` or ``image+state``."""
    return str(getattr(config, "inputs", "state"))


def parse_model_config(data: Mapping[str, Any] | PolicyConfig) -> PolicyConfig:
    """Validate a mapping (e.g. a YAML section) into the config class its ``name`` selects.

    Raises ``pydantic.ValidationError``; see :func:`format_validation_error`.
    """
    if isinstance(data, MLPConfig | CNN1DConfig | CNN2DConfig):
        return data
    return _MODEL_CONFIG.validate_python(data)


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _closest_hint(value: Any, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1)
    return f", did you mean {close[0]!r}?" if close else ""


def _format_error(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == UNKNOWN_KEY:
        hint = f", did you mean {ctx['suggestion']!r}?" if ctx.get("suggestion") else ""
        return f"{'.'.join([*loc, ctx['key']])}: unknown key{hint}"
    if kind == "extra_forbidden":  # a plain pydantic model without StrictConfig
        return f"{'.'.join(loc)}: unknown key"
    where = ".".join(loc) or "config"
    if kind == "value_error":
        return f"{where}: {ctx.get('error', error.get('msg', ''))}"
    if kind == "literal_error":
        return (
            f"{where}: {value!r} is not one of {ctx.get('expected', '?')}"
            f"{_closest_hint(value, _quoted(str(ctx.get('expected', ''))))}"
        )
    discriminator = str(ctx.get("discriminator", "name")).strip("'")
    if kind == "union_tag_invalid":
        tags = _quoted(str(ctx.get("expected_tags", "")))
        return (
            f"{where}: unknown {discriminator} {ctx.get('tag')!r} "
            f"(expected one of {', '.join(tags)}){_closest_hint(ctx.get('tag'), tags)}"
        )
    if kind == "union_tag_not_found":
        return f"{where}: missing key {discriminator!r} (which architecture to build)"
    message = str(error.get("msg", kind))
    if isinstance(value, str | int | float | bool) or value is None:
        message += f" (got {value!r})"
    return f"{where}: {message}"


def format_validation_error(exc: ValidationError, limit: int = 3) -> str:
    """One line naming each offending field (dotted path) and what is wrong with it.

    Unknown keys come with the closest valid key; invalid choices with the closest valid
    choice. At most ``limit`` problems are spelled out, the rest counted.
    """
    errors = exc.errors(include_url=False)
    parts = [_format_error(error) for error in errors[:limit]]
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more problem(s)")
    return " ".join("; ".join(parts).split())  # collapse any newline into one line
