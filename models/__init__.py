"""Keras policies for imitation learning: configs, the policy spec, builders, saving.

``models.config`` and ``models.spec`` import no TensorFlow, so validating a config stays fast;
the Keras-backed names below (``build_policy``, ``save_policy``, ...) are imported on first
use. Typical use::

    from models import PolicySpec, build_policy, save_policy, load_policy

    built = build_policy("mlp", spec, {"hidden_sizes": [256, 256], "dropout": 0.1}, seed=0)
    built.train_model.compile(optimizer="adam", loss=built.loss)
    built.train_model.fit(raw_obs, spec.normalize_actions(raw_actions))
    save_policy("runs/walk/policy", built.policy, spec, config_dict)
    actions = load_policy("runs/walk/policy").model(raw_obs)
"""

from __future__ import annotations

import importlib
from typing import Any

from models.config import (
    CNN1DConfig,
    LayerOptions,
    MLPConfig,
    ModelConfig,
    MotionNetConfig,
    PolicyConfig,
    StrictConfig,
    format_validation_error,
    parse_model_config,
)
from models.spec import PolicySpec

_LAZY = {
    "Blocks": "models.builders.blocks",
    "PolicyModels": "models.registry",
    "UnknownPolicyError": "models.registry",
    "available_policies": "models.registry",
    "build_loss": "models.registry",
    "build_policy": "models.registry",
    "register_policy": "models.registry",
    "LoadedPolicy": "models.saving",
    "PolicyLoadError": "models.saving",
    "PolicySaveError": "models.saving",
    "load_policy": "models.saving",
    "save_policy": "models.saving",
    "build_motion_net": "models.motion_net",
}


def __getattr__(name: str) -> Any:
    # Keras/TensorFlow take seconds to import; only pay for them when a builder is used.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")


__all__ = [
    "Blocks",
    "CNN1DConfig",
    "LayerOptions",
    "LoadedPolicy",
    "MLPConfig",
    "ModelConfig",
    "MotionNetConfig",
    "PolicyConfig",
    "PolicyLoadError",
    "PolicyModels",
    "PolicySaveError",
    "PolicySpec",
    "StrictConfig",
    "UnknownPolicyError",
    "available_policies",
    "build_loss",
    "build_motion_net",
    "build_policy",
    "format_validation_error",
    "load_policy",
    "parse_model_config",
    "register_policy",
    "save_policy",
]
