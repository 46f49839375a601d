"""Import TensorFlow once, quietly, and find its devices.

TensorFlow 2.21 writes its start-up log (oneDNN notice, CPU features, "could not find
cuda drivers", a cuInit error on machines without a GPU) from C++ straight to file
descriptor 2, ignoring ``TF_CPP_MIN_LOG_LEVEL`` for the lines printed before absl's
logging is initialised. None of it is actionable for a user, so the import and the first
device query run with the descriptors muted (``sim.quiet``); Python exceptions still
propagate.
"""

from __future__ import annotations

import functools
import os

from sim.quiet import muted_output


@functools.cache
def gpu_names() -> tuple[str, ...]:
    """Import TensorFlow and Keras (muted) and return the GPUs TensorFlow sees."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with muted_output():
        import keras  # noqa: F401
        import tensorflow as tf

        return tuple(gpu.name for gpu in tf.config.list_physical_devices("GPU"))
