"""The TensorFlow runtime of a training run: seeds, determinism, precision and device
placement (one device or mirrored across several).

Keras and TensorFlow keep these settings process-wide. A training run sets them for
itself inside :func:`training_runtime` and puts back what it found on the way out, so
DAgger iterations, tuning trials and tests can train many times in one process, each run
as if it were alone.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.training.config import TrainConfig


def configure_tensorflow(config: TrainConfig) -> str:
    """Seeds, determinism, precision; returns a device description. Changes process-wide
    state: call it inside :func:`training_runtime`, which restores it."""
    from pipeline.core.tensorflow_setup import gpu_names

    gpus = gpu_names()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    if config.training.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.training.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    return f"GPU x{len(gpus)} ({', '.join(gpus)})" if gpus else "CPU"


@dataclass
class ProcessState:
    """What :func:`configure_tensorflow` changes, as it was before: Python's and NumPy's
    global random state, Keras' global seed and seed generator, TensorFlow's global seed
    and the generator it derives op seeds from, op determinism and the mixed-precision
    policy."""

    python_random: Any
    numpy_random: Any
    keras_attributes: dict[str, Any]
    tf_seed: Any
    tf_op_seeds: Any
    op_determinism: bool
    precision_policy: Any

    @classmethod
    def capture(cls) -> ProcessState:
        import keras
        from keras.src.backend.common import global_state
        from tensorflow.python.eager import context
        from tensorflow.python.framework import config as tf_config

        ctx = context.context()
        op_seeds = getattr(ctx, "_rng", None)
        return cls(
            python_random=random.getstate(),
            numpy_random=np.random.get_state(),
            keras_attributes={
                name: global_state.get_global_attribute(name) for name in _KERAS_SEED_ATTRIBUTES
            },
            # TensorFlow has no public getter for these; keras.utils.set_random_seed sets them.
            tf_seed=getattr(ctx, "_seed", None),
            tf_op_seeds=op_seeds.getstate() if op_seeds is not None else None,
            op_determinism=tf_config.is_op_determinism_enabled(),
            precision_policy=keras.mixed_precision.global_policy(),
        )

    def restore(self) -> None:
        import keras
        from keras.src.backend.common import global_state
        from tensorflow.python.eager import context
        from tensorflow.python.framework import config as tf_config

        random.setstate(self.python_random)
        np.random.set_state(self.numpy_random)
        for name, value in self.keras_attributes.items():
            global_state.set_global_attribute(name, value)
        ctx = context.context()
        if self.tf_seed is None:
            ctx._seed = None
            if hasattr(ctx, "_rng"):  # created by the first seed; unused without one
                del ctx._rng
        else:
            ctx._set_global_seed(self.tf_seed)  # also clears kernels cached with a seed
            if self.tf_op_seeds is not None:
                ctx._rng.setstate(self.tf_op_seeds)
        if tf_config.is_op_determinism_enabled() != self.op_determinism:
            # TensorFlow exports only enable_op_determinism; its config module has both.
            (tf_config.enable_op_determinism if self.op_determinism
             else tf_config.disable_op_determinism)()  # fmt: skip
        keras.mixed_precision.set_global_policy(self.precision_policy)


_KERAS_SEED_ATTRIBUTES = ("global_random_seed", "global_seed_generator")
"""Keras' global-state names of the seed ``set_random_seed`` stores and of the generator
``keras.random`` falls back on (``keras.src.random.seed_generator``)."""


@contextlib.contextmanager
def training_runtime(config: TrainConfig) -> Iterator[str]:
    """Configure TensorFlow for ``config`` (:func:`configure_tensorflow`; yields the device
    description) and restore the process-wide state it changed on the way out, whether
    training ended or failed."""
    saved = ProcessState.capture()
    try:
        yield configure_tensorflow(config)
    finally:
        saved.restore()


@contextlib.contextmanager
def seeded_runtime(seed: int) -> Iterator[None]:
    """Keras' global seed and TensorFlow's op determinism for an algorithm that builds its
    own networks (reward fine-tuning), restored on the way out as :func:`training_runtime`
    does."""
    import keras
    import tensorflow as tf

    saved = ProcessState.capture()
    try:
        keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
        yield
    finally:
        saved.restore()


def distribution_scope(config: TrainConfig) -> Any:
    """``MirroredStrategy().scope()`` when asked (or several GPUs with ``auto``), else a
    no-op context: variables created inside are mirrored across the devices."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    strategy = config.training.strategy
    if strategy == "mirrored" or (strategy == "auto" and len(gpus) > 1):
        devices = [d.name for d in tf.config.list_logical_devices("GPU" if gpus else "CPU")]
        return tf.distribute.MirroredStrategy(devices).scope()
    return contextlib.nullcontext()
