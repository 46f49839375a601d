"""What MLflow accepts: plain values, flat dotted params, valid keys, values cut to MLflow's
limits, and run names."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    pass

# Limits of the installed MLflow (mlflow.utils.validation); kept here so the module does not
# import mlflow to know them. A test checks they still match.
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_KEY_LENGTH = 250
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
TRUNCATED_PARAMS_FILE = "params_truncated.json"
_TRUNCATED_MARKER = f"...[truncated; full value in {TRUNCATED_PARAMS_FILE}]"

# MLflow accepts only these characters in param, metric and tag keys (on POSIX).
_INVALID_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def plain(value: Any) -> Any:
    """``value`` as JSON/YAML-safe Python: NumPy scalars and arrays, paths, dataclasses."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif hasattr(value, "model_dump"):  # pydantic
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def run_name(stage: str, env_id: str, *parts: str, when: datetime | None = None) -> str:
    """A run name that tells runs apart in the UI: stage, environment, what ran and the UTC
    start, e.g. ``train HumanoidWalk mlp seed0 2026-12-02 01:23``."""
    env = re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1])
    stamp = (when or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M")
    return " ".join([stage, env, *parts, stamp])


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config dicts as ``{"optimizer.lr": "0.001", "layers": "[256, 256]"}``.

    Lists stay one value (JSON) so a layer list reads as one setting, not one per layer.
    """
    flat: dict[str, str] = {}
    for key, value in plain(params).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, prefix=f"{name}."))
        elif isinstance(value, (str, bool, int, float)) or value is None:
            flat[name] = str(value)
        else:
            flat[name] = json.dumps(value)
    return flat


def sanitize_key(key: str) -> str:
    """A key MLflow accepts: allowed characters only, no empty or ``..`` path segments."""
    cleaned = _INVALID_KEY_CHARS.sub("_", str(key))
    parts = [part if part not in (".", "..") else "_" for part in cleaned.split("/") if part]
    return "/".join(parts)[:MAX_KEY_LENGTH] or "_"


def truncate(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, ending in a marker that says so."""
    if len(value) <= limit:
        return value
    return value[: limit - len(_TRUNCATED_MARKER)] + _TRUNCATED_MARKER
