"""The policy a fit trains: built from the config's model section, its training model
compiled with the configured optimizer and schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.training.config import TrainConfig
from pipeline.training.runtime import distribution_scope

if TYPE_CHECKING:
    from models.spec import PolicySpec


def build_model(config: TrainConfig, spec: PolicySpec, total_steps: int) -> Any:
    """The policy (``BuiltPolicy``), its training model compiled with the optimizer whose
    schedule spans ``total_steps``."""
    from models import build_policy
    from pipeline.training.optim import build_optimizer

    with distribution_scope(config):
        built = build_policy(config.model, spec, seed=config.seed)
        built.train_model.compile(
            optimizer=build_optimizer(config.optimizer, config.schedule, total_steps),
            loss=built.loss,
            metrics=built.metrics,
        )
    return built
