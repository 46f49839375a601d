"""The TensorFlow runtime of a training run: seeds, determinism, precision and device
placement (one device or mirrored across several)."""

from __future__ import annotations

from typing import Any

from pipeline.training.config import TrainConfig


def configure_tensorflow(config: TrainConfig) -> str:
    """Seeds, determinism, precision; returns a device description."""
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


def distribution_scope(config: TrainConfig) -> Any:
    """``MirroredStrategy().scope()`` when asked (or several GPUs with ``auto``), else a
    no-op context: variables created inside are mirrored across the devices."""
    import contextlib

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    strategy = config.training.strategy
    if strategy == "mirrored" or (strategy == "auto" and len(gpus) > 1):
        devices = [d.name for d in tf.config.list_logical_devices("GPU" if gpus else "CPU")]
        return tf.distribute.MirroredStrategy(devices).scope()
    return contextlib.nullcontext()
