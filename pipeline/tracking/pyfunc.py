"""The MLflow pyfunc flavour of a logged Keras policy: its loader hook, requirements and the
check that a fresh process could rebuild it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

KERAS_FILE = "policy.keras"
LOADER_MODULE = __name__
"""What a logged model names as its ``loader_module``: this module, for :func:`_load_pyfunc`."""
# This project's distribution: it holds the loader (``loader_module``) and ``models``.
DISTRIBUTION = "humanoid-imitation"
# Packages whose layers a fresh process can rebuild: Keras' own and this package's models
# (imported by the loader), never a module an artifact names.
_LOADABLE_LAYER_PACKAGES = ("keras", "tensorflow", "tf_keras", "models")


def check_loadable_layers(model: keras.Model) -> None:
    """Refuse a model with a layer defined outside :data:`_LOADABLE_LAYER_PACKAGES`."""
    pending: list[Any] = [model]
    while pending:
        layer = pending.pop()
        module = type(layer).__module__
        if module.split(".")[0] not in _LOADABLE_LAYER_PACKAGES:
            raise ValueError(
                f"cannot log policy: layer {layer.name!r} ({type(layer).__name__} from {module}) "
                "is defined outside Keras and this package's models, so the logged model "
                "could not be loaded elsewhere; define it in models/"
            )
        pending.extend(getattr(layer, "layers", []))


def pip_requirements() -> list[str]:
    """Requirements of the logged model, pinned to this environment: this package (the
    loader lives in it) and the libraries that compute its actions. Given so MLflow need
    not infer them (its inference loads the model in a subprocess, seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    requirements = []
    for package in (DISTRIBUTION, "mlflow", "keras", "tensorflow", "numpy"):
        try:
            requirements.append(f"{package}=={version(package)}")
        except PackageNotFoundError:  # e.g. run from a source tree: still name it
            requirements.append(package)
    return requirements


class _KerasPolicy:
    """What ``mlflow.pyfunc`` wraps: a Keras policy called directly, batch by batch."""

    _BATCH = 8192

    def __init__(self, model: keras.Model) -> None:
        import keras

        self.model = model
        self._to_numpy = keras.ops.convert_to_numpy

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> np.ndarray:
        """Raw actions ``(N, act_dim)`` for raw observations ``(N, obs_dim)`` (an image
        policy: a dict of its named inputs)."""
        inputs = as_model_inputs(model_input)
        rows = len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
        # A direct call is ~10x faster than model.predict for the small batches of rollouts.
        chunks = [
            self._to_numpy(self.model(first_rows(inputs, start + self._BATCH, start),
                                      training=False))
            for start in range(0, rows, self._BATCH)
        ]  # fmt: skip
        return np.concatenate(chunks) if chunks else np.zeros((0,), dtype=np.float32)


def as_model_inputs(data: Any) -> np.ndarray | dict[str, np.ndarray]:
    """A policy's inputs as arrays: camera frames (uint8) stay uint8, the rest float32; a
    mapping (or DataFrame-like ``values``) keeps its names."""
    if isinstance(data, Mapping):
        return {str(name): _array(value) for name, value in data.items()}
    return _array(getattr(data, "values", data))


def _array(value: Any) -> np.ndarray:
    array = np.asarray(value)
    return array if array.dtype == np.uint8 else array.astype(np.float32)


def first_rows(
    inputs: np.ndarray | dict[str, np.ndarray], stop: int, start: int = 0
) -> np.ndarray | dict[str, np.ndarray]:
    """Rows ``start:stop`` of every input."""
    if isinstance(inputs, dict):
        return {name: value[start:stop] for name, value in inputs.items()}
    return inputs[start:stop]


def _load_pyfunc(data_path: str) -> _KerasPolicy:
    """MLflow's loader hook (``loader_module``) for policies logged by ``log_keras_policy``.

    The code it runs is fixed here: a policy directory goes through ``models.load_policy``
    (checksums, safe mode), a bare ``.keras`` file through Keras with ``safe_mode=True``.
    Nothing in the artifacts decides what is imported.
    """
    import keras

    from models.saving import is_policy_directory, load_policy

    data = Path(data_path)
    if is_policy_directory(data):
        return _KerasPolicy(load_policy(data).model)
    model = keras.saving.load_model(data / KERAS_FILE, compile=False, safe_mode=True)
    return _KerasPolicy(model)
