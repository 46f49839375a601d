"""Import TensorFlow once, quietly, and find its devices.

TensorFlow 2.21 writes its start-up log (oneDNN notice, CPU features, "could not find
cuda drivers", a cuInit error on machines without a GPU) from C++ straight to file
descriptor 2, ignoring ``TF_CPP_MIN_LOG_LEVEL`` for the lines printed before absl's
logging is initialised. None of it is actionable for a user, so the import and the first
device query run with the descriptors muted (``sim.quiet``); Python exceptions still
propagate.

TensorFlow is imported from many places (Keras model code, the tf.data pipeline, spawned
worker processes), so :func:`mute_tensorflow_import` makes the first ``import tensorflow``
of a process quiet wherever it happens; ``pipeline/__init__.py`` calls it, which covers
the command line and every worker process that unpickles a pipeline function.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from sim.quiet import muted_output


class _MutedTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` like the path finder does, but executes it muted."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_muted(module: ModuleType) -> None:
            with muted_output():
                execute(module)

        # The loader instance belongs to this one spec; shadowing its method keeps its type
        # (TensorFlow's lazy loaders and importlib.resources look at it).
        spec.loader.exec_module = exec_muted  # type: ignore[method-assign]
        return spec


def mute_tensorflow_import() -> None:
    """Make this process's first ``import tensorflow`` (direct or via Keras) quiet."""
    if "tensorflow" in sys.modules or any(
        isinstance(finder, _MutedTensorFlowImport) for finder in sys.meta_path
    ):
        return
    sys.meta_path.insert(0, _MutedTensorFlowImport())


@functools.cache
def gpu_names() -> tuple[str, ...]:
    """Import TensorFlow and Keras (muted) and return the GPUs TensorFlow sees."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with muted_output():
        import keras  # noqa: F401
        import tensorflow as tf

        return tuple(gpu.name for gpu in tf.config.list_physical_devices("GPU"))
