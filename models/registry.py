"""Policy registry and the frame every architecture is built into.

An architecture is a *trunk* builder registered under a name together with its config
class. The built-in trunks live in ``models.builders``, one module each, and are named
here, right after :func:`register_policy`; the builders never import the registry, so
imports go one way only. Other code can add an architecture with the decorator::

    @register_policy("tiny", TinyConfig)   # TinyConfig.name defaults to "tiny"
    def build_tiny(x, spec, config, blocks): ...   # normalized obs tensor -> features

:func:`build_policy` puts every trunk in the same frame, so normalization can never be
forgotten by an architecture::

    raw obs -> Normalization(obs stats) -> trunk -> Dense(act_dim, linear)   = train_model
                                                         -> Normalization(act stats, invert)
                                                                              = policy

The two Keras models share every layer. ``train_model`` maps raw observations to z-scored
actions: compile and fit it on z-scored targets (``spec.normalize_actions``), so the loss is
measured in units where every action dimension counts alike. ``policy`` maps raw
observations to raw actions: it is what rollouts call and what gets saved. Training
``train_model`` trains ``policy``; no custom ``train_step`` is involved, so both are plain
functional models that save and load with ``safe_mode=True``.

An ensemble (``ensemble: N`` in the config) builds trunk and output layer N times on the
same normalized observation; ``policy`` averages the members' z-scored actions before the
inverse normalization, ``train_model`` outputs them side by side for a loss that scores
each member on its own (``models.ensemble``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import keras
import numpy as np

from models.builders.blocks import Blocks, member_layer_name
from models.builders.cnn import build_cnn1d
from models.builders.cnn2d import build_cnn2d
from models.builders.mlp import build_mlp
from models.config import (
    CNN1DConfig,
    CNN2DConfig,
    LayerOptions,
    MLPConfig,
    PolicyConfig,
    config_inputs,
)
from models.spec import IMAGE_INPUT, OBS_INPUT, PolicySpec

TRAIN_OUTPUT_LAYER = "action_normalized"
"""Name of the linear output layer (z-scored actions); the train model ends here. Ensemble
member k > 0 names its layers ``m<k>_...`` (``member_layer_name``)."""
ENSEMBLE_MEAN_LAYER = "ensemble_mean"
"""An ensemble policy's average of its members' z-scored actions."""
ENSEMBLE_MEMBERS_LAYER = "ensemble_members"
"""An ensemble's training output: the members' z-scored actions side by side."""
GAUSSIAN_HEAD_LAYER = "gaussian_head"
"""With the Gaussian log-likelihood loss: the training model's last layer (mean, log std)."""
OBS_NORM_LAYER = "obs_norm"
ACTION_LAYER = "action"
PIXEL_SCALE_LAYER = "pixel_scale"
FRAME_STACK_LAYER = "frame_stack"

Builder = TypeVar("Builder", bound=Callable[..., Any])


class UnknownPolicyError(ValueError):
    """No architecture is registered under the requested name."""


@dataclass(frozen=True)
class _Entry:
    config_class: type[LayerOptions]
    builder: Callable[[Any, PolicySpec, Any, Blocks], Any]


_REGISTRY: dict[str, _Entry] = {}


def register_policy(name: str, config_class: type[LayerOptions]) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(x, spec, config, blocks) -> features`` under ``name``.

    ``x`` is the normalized observation tensor, (N, obs_dim) or (N, K, obs_dim); for a
    config with an ``inputs`` field that sees images, a dict of the scaled, stacked frames
    (``"image"``, (N, H, W, 3K)) and, with ``image+state``, the normalized state
    (``"observation"``). The builder returns the last hidden features, to which the frame
    adds the linear action layer.
    ``config_class`` must have a ``name`` field defaulting to ``name``.
    """
    field = config_class.model_fields.get("name")
    if field is None or field.default != name:
        raise ValueError(f"{config_class.__name__}.name must default to {name!r}")

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"a policy named {name!r} is already registered")
        _REGISTRY[name] = _Entry(config_class, builder)
        return builder

    return decorate


# The built-in architectures, named here rather than by decorators in their modules, so
# that the builders need not import this module.
register_policy("mlp", MLPConfig)(build_mlp)
register_policy("cnn1d", CNN1DConfig)(build_cnn1d)
register_policy("cnn2d", CNN2DConfig)(build_cnn2d)


def available_policies() -> tuple[str, ...]:
    """Names of all registered architectures, sorted."""
    return tuple(sorted(_REGISTRY))


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, sorted(_REGISTRY), n=1)
        hint = f", did you mean {close[0]!r}?" if close else ""
        raise UnknownPolicyError(
            f"unknown policy {name!r} (available: {', '.join(sorted(_REGISTRY))}){hint}"
        )
    return _REGISTRY[name]


def resolve_config(
    name_or_config: str | LayerOptions | Mapping[str, Any],
    config: LayerOptions | Mapping[str, Any] | None = None,
) -> LayerOptions:
    """The validated config object for a name plus optional config, or for a config alone.

    Raises ``UnknownPolicyError``, ``pydantic.ValidationError`` or ``TypeError``.
    """
    if isinstance(name_or_config, LayerOptions | Mapping):
        if config is not None:
            raise TypeError("pass either a config alone or a policy name and its config")
        if isinstance(name_or_config, LayerOptions):
            _entry(name_or_config.name)  # type: ignore[attr-defined]
            return name_or_config
        name, config = str(name_or_config.get("name", "")), name_or_config
    else:
        name = name_or_config
    entry = _entry(name)
    if config is None:
        return entry.config_class()
    if isinstance(config, entry.config_class):
        return config
    if isinstance(config, Mapping):
        return entry.config_class.model_validate({**config, "name": config.get("name", name)})
    raise TypeError(f"config for {name!r} must be a mapping or {entry.config_class.__name__}")


def build_loss(config: LayerOptions, act_dim: int) -> keras.losses.Loss:
    """The configured training loss (on z-scored actions); for an ensemble, the mean of the
    members' losses (``models.ensemble``)."""
    loss: keras.losses.Loss
    if config.loss == "huber":
        loss = keras.losses.Huber(delta=config.huber_delta, name="huber")
    elif config.loss == "gaussian_nll":
        from models.gaussian import GaussianNLL

        return GaussianNLL(act_dim)
    else:
        loss = keras.losses.MeanSquaredError(name="mse")
    if config.ensemble == 1:
        return loss
    from models.ensemble import MemberMeanLoss

    return MemberMeanLoss(loss, config.ensemble, act_dim)


def _training_head(config: LayerOptions, act_dim: int, members: list[Any]) -> Any:
    """The training model's output: the z-scored action, with a learned log spread beside it
    for the Gaussian log-likelihood loss (the policy itself always ends at the mean); an
    ensemble's members' actions side by side."""
    if len(members) > 1:
        return keras.layers.Concatenate(name=ENSEMBLE_MEMBERS_LAYER)(members)
    if config.loss != "gaussian_nll":
        return members[0]
    from models.gaussian import AppendLogStd

    return AppendLogStd(act_dim, name=GAUSSIAN_HEAD_LAYER)(members[0])


def _ensemble_mean(members: list[Any]) -> Any:
    """The members' z-scored actions averaged (the one member's, unchanged, if alone)."""
    if len(members) == 1:
        return members[0]
    return keras.layers.Average(name=ENSEMBLE_MEAN_LAYER)(members)


def normalized_action_output(policy: keras.Model) -> Any:
    """The policy's z-scored action tensor: its output layer's, an ensemble's mean."""
    names = {layer.name for layer in policy.layers}
    name = ENSEMBLE_MEAN_LAYER if ENSEMBLE_MEAN_LAYER in names else TRAIN_OUTPUT_LAYER
    return policy.get_layer(name).output


@dataclass(frozen=True)
class PolicyModels:
    """A built policy: two functional models sharing all layers (see the module docstring)."""

    train_model: keras.Model
    """Raw observations -> z-scored actions; compile with :attr:`loss` and fit this one."""
    policy: keras.Model
    """Raw observations -> raw actions; roll out and save this one."""
    spec: PolicySpec
    """Shapes and normalization statistics the models were built with."""
    config: PolicyConfig | LayerOptions
    """The validated architecture config."""

    @property
    def loss(self) -> keras.losses.Loss:
        """A fresh instance of the configured loss."""
        return build_loss(self.config, self.spec.act_dim)

    @property
    def metrics(self) -> list[Any]:
        """Extra compile metrics: the policy's action's squared error when the loss is not
        MSE on it alone (the Gaussian log-likelihood, an ensemble's member losses), so fits
        stay comparable."""
        if self.config.ensemble > 1:
            from models.ensemble import EnsembleActionMSE

            return [EnsembleActionMSE(self.config.ensemble, self.spec.act_dim)]
        if self.config.loss != "gaussian_nll":
            return []
        from models.gaussian import MeanActionMSE

        return [MeanActionMSE(self.spec.act_dim)]

    @classmethod
    def from_policy(
        cls, policy: keras.Model, spec: PolicySpec, config: LayerOptions
    ) -> PolicyModels:
        """Recover the train model from a (reloaded) policy, e.g. to fine-tune it (DAgger)."""
        members = [policy.get_layer(member_layer_name(TRAIN_OUTPUT_LAYER, k)).output
                   for k in range(config.ensemble)]  # fmt: skip
        head = _training_head(config, spec.act_dim, members)
        train_model = keras.Model(policy.input, head, name=f"{policy.name}_train")
        return cls(train_model, policy, spec, config)


def _normalization(mean: Any, variance: Any, name: str, invert: bool = False) -> keras.layers.Layer:
    # float32 even under a mixed-precision policy: float16 would round raw observations
    # (and the statistics) before they are scaled.
    return keras.layers.Normalization(
        axis=-1, mean=np.asarray(mean), variance=np.asarray(variance), invert=invert,
        name=name, dtype="float32",
    )  # fmt: skip


def _image_features(image: Any, spec: PolicySpec, config: LayerOptions) -> Any:
    """Raw uint8 frames -> float frames scaled as configured, K frames side by side in the
    channels (H, W, 3K), oldest first."""
    if spec.history > 1:
        height, width, channels = spec.camera.frame_shape  # type: ignore[union-attr]
        # (K, H, W, 3) -> (H, W, K, 3) -> (H, W, 3K): channel 3k + c is frame k's colour c.
        image = keras.layers.Permute((2, 3, 1, 4), name=f"{FRAME_STACK_LAYER}_order")(image)
        image = keras.layers.Reshape((height, width, spec.history * channels),
                                     name=FRAME_STACK_LAYER)(image)  # fmt: skip
    symmetric = getattr(config, "pixel_scale", "unit") == "symmetric"
    scale, offset = (1.0 / 127.5, -1.0) if symmetric else (1.0 / 255.0, 0.0)
    return keras.layers.Rescaling(scale, offset, name=PIXEL_SCALE_LAYER, dtype="float32")(image)


def _model_inputs(
    spec: PolicySpec, config: LayerOptions, image_dtype: str
) -> tuple[list[Any], Any]:
    """The Keras inputs the spec describes and what the builder receives from them."""
    wanted = config_inputs(config)
    if wanted != spec.inputs:
        raise ValueError(
            f"{config.name} sees {wanted!r} but the spec describes {spec.inputs!r} inputs"  # type: ignore[attr-defined]
        )
    inputs, features = [], {}
    for name, shape in spec.input_shapes.items():
        dtype = image_dtype if name == IMAGE_INPUT else "float32"
        tensor = keras.Input(shape=shape, name=name, dtype=dtype)
        inputs.append(tensor)
        if name == IMAGE_INPUT:
            features[name] = _image_features(tensor, spec, config)
        else:
            features[name] = _normalization(spec.obs_mean, spec.obs_variance, OBS_NORM_LAYER)(
                tensor
            )
    if not spec.uses_images:
        return inputs, features[OBS_INPUT]
    return inputs, features


def build_policy(
    name_or_config: str | LayerOptions | Mapping[str, Any],
    spec: PolicySpec,
    config: LayerOptions | Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    image_dtype: str = "uint8",
) -> PolicyModels:
    """Build a registered architecture with normalization inside.

    ``build_policy("mlp", spec, {"hidden_sizes": [64]})``, ``build_policy("mlp", spec)`` (all
    defaults) and ``build_policy(MLPConfig(...), spec)`` are equivalent ways to ask. ``seed``
    fixes every initializer and dropout layer. Raises ``UnknownPolicyError``,
    ``pydantic.ValidationError``, or ``ValueError`` when the spec does not suit the
    architecture (e.g. ``cnn1d`` without an observation history, ``cnn2d`` without a
    camera). Image policies take their inputs in ``spec.input_shapes`` order (the frames
    first) and accept a dict keyed by input name; their frames are raw uint8 pixels
    (``image_dtype="float32"`` builds a twin that takes float pixels, through which
    gradients reach the pixels: saliency maps).
    """
    cfg = resolve_config(name_or_config, config)
    entry = _entry(cfg.name)  # type: ignore[attr-defined]
    name = cfg.name  # type: ignore[attr-defined]

    inputs, x = _model_inputs(spec, cfg, image_dtype)
    members = []
    for member in range(cfg.ensemble):
        blocks = Blocks(cfg, seed, member)
        features = entry.builder(x, spec, cfg, blocks)
        # Glorot suits the output's identity activation whatever the hidden initializer is.
        members.append(keras.layers.Dense(
            spec.act_dim,
            kernel_initializer=blocks.initializer("glorot_uniform"),
            kernel_regularizer=blocks.regularizer(),
            name=blocks.name(TRAIN_OUTPUT_LAYER),
            dtype="float32",
        )(features))  # fmt: skip
    action = _normalization(spec.act_mean, spec.act_variance, ACTION_LAYER, invert=True)(
        _ensemble_mean(members)
    )
    model_input = inputs[0] if len(inputs) == 1 else inputs
    train_model = keras.Model(
        model_input, _training_head(cfg, spec.act_dim, members), name=f"{name}_train"
    )
    policy = keras.Model(model_input, action, name=f"{name}_policy")
    return PolicyModels(train_model, policy, spec, cfg)
