"""The policy a fit trains: built from the config's model section, optionally started from
a trained policy's weights with its first hidden blocks frozen (warm start, fine-tuning,
transfer), and its training model compiled with the configured optimizer and schedule."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import PipelineError
from pipeline.training.config import TrainConfig
from pipeline.training.runtime import distribution_scope

if TYPE_CHECKING:
    from models import LoadedPolicy
    from models.spec import PolicySpec

_BLOCK_LAYER = re.compile(r"^(?P<member>m\d+_)?(?P<block>[a-z]+_\d+)(?:_(?:bn|act|drop))?$")
"""Layer names of the hidden blocks the builders make: ``hidden_0``, ``hidden_0_bn``,
``hidden_0_act``, ``hidden_0_drop``, ``conv_1``, ..., and in ensemble member k > 0 the same
names after ``m<k>_`` (``models.builders.blocks.Blocks``)."""


def build_model(
    config: TrainConfig, spec: PolicySpec, total_steps: int, source: LoadedPolicy | None = None
) -> Any:
    """The policy (``PolicyModels``), its training model compiled with the optimizer whose
    schedule spans ``total_steps``. With ``source`` (``config.init.from_policy`` loaded),
    every layer but the normalization starts from the source's weights and the first
    ``config.init.freeze`` hidden blocks are not trained."""
    from models import build_policy
    from pipeline.training.optim import build_optimizer

    with distribution_scope(config):
        built = build_policy(config.model, spec, seed=config.seed)
        if source is not None:
            check_source_spaces(spec, source.spec, config.init.from_policy or "")
            copy_weights(source, built.policy, config.init.from_policy or "")
            freeze_blocks(built.policy, config.init.freeze)
        built.train_model.compile(
            optimizer=build_optimizer(config.optimizer, config.schedule, total_steps),
            loss=built.loss,
            metrics=built.metrics,
        )
    return built


def _learned_layers(model: Any) -> dict[str, Any]:
    """Layers with weights, except the normalization layers (built from the spec)."""
    from models.registry import ACTION_LAYER, OBS_NORM_LAYER

    skip = (OBS_NORM_LAYER, ACTION_LAYER)
    return {layer.name: layer for layer in model.layers if layer.weights and layer.name not in skip}


def _shapes(layer: Any) -> list[tuple[int, ...]]:
    return [tuple(int(n) for n in w.shape) for w in layer.weights]


def copy_weights(source: LoadedPolicy, policy: Any, where: str) -> None:
    """Set every learned layer of ``policy`` to the same layer's weights in ``source``;
    one line naming the first difference if the architectures differ."""
    theirs, ours = _learned_layers(source.model), _learned_layers(policy)
    if list(theirs) != list(ours):
        missing = [name for name in ours if name not in theirs]
        extra = [name for name in theirs if name not in ours]
        raise PipelineError(
            f"--init-from {where}: architecture differs from model "
            f"(layers only in the new model: {missing or 'none'}; only in the source: "
            f"{extra or 'none'}); set model.* as the source was trained"
        )
    for name, layer in ours.items():
        if _shapes(layer) != _shapes(theirs[name]):
            raise PipelineError(
                f"--init-from {where}: layer {name} has shapes {_shapes(theirs[name])} in the "
                f"source and {_shapes(layer)} in the new model (different sizes or data)"
            )
        layer.set_weights(theirs[name].get_weights())


def hidden_blocks(policy: Any) -> list[list[Any]]:
    """The hidden blocks of a built policy in input-to-output order, each its layers (of an
    ensemble: member 0's blocks, each with the same block of every other member)."""
    blocks: dict[str, list[Any]] = {}
    for layer in policy.layers:
        match = _BLOCK_LAYER.match(layer.name)
        if match:
            blocks.setdefault(match["block"], []).append(layer)
    return list(blocks.values())


def freeze_blocks(policy: Any, count: int) -> None:
    """Stop the first ``count`` hidden blocks (of every ensemble member) from training;
    batch normalization in them then uses its moving statistics, as a frozen feature
    extractor should."""
    blocks = hidden_blocks(policy)
    if count > len(blocks):
        raise PipelineError(
            f"--freeze {count}: the policy has {len(blocks)} hidden block(s); freeze at most "
            f"{len(blocks)}"
        )
    for block in blocks[:count]:
        for layer in block:
            layer.trainable = False


def check_source_spaces(spec: PolicySpec, source: PolicySpec, where: str) -> None:
    """One line naming ``--init-from`` when the source policy reads other observations or
    writes other actions than this data has (another task: transfer needs the same body)."""
    if (spec.obs_shape, spec.act_dim) != (source.obs_shape, source.act_dim):
        raise PipelineError(
            f"--init-from {where}: the source policy maps observations {source.obs_shape} to "
            f"{source.act_dim} actions; this data has {spec.obs_shape} and {spec.act_dim}"
        )
    if spec.image_shape != source.image_shape:
        raise PipelineError(
            f"--init-from {where}: the source policy sees camera frames {source.image_shape}; "
            f"this data and model give {spec.image_shape}"
        )


def keep_source_normalization(spec: PolicySpec, source: PolicySpec, where: str) -> PolicySpec:
    """``spec`` with ``source``'s observation and action normalization."""
    check_source_spaces(spec, source, where)
    return dataclasses.replace(spec, obs_norm=source.obs_norm, obs_mean=source.obs_mean,
                               obs_variance=source.obs_variance, act_mean=source.act_mean,
                               act_variance=source.act_variance)  # fmt: skip
