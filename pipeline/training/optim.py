"""Optimizers and learning-rate schedules built from the typed config.

The update rules and schedules are the textbook ones (momentum/Nesterov,
AdaGrad, RMSProp, Adam/Nadam with bias correction, AdamW; power/inverse-time,
exponential and piecewise decay, cosine with warm-up); Keras implements them.
"""

from __future__ import annotations

from typing import Any

from pipeline.training.config import OptimizerConfig, ScheduleConfig


def resolve_decay_steps(config: ScheduleConfig, total_steps: int) -> int:
    """``config.decay_steps``, or when it is None the run's ``total_steps`` optimizer steps
    (less the warm-up for cosine, whose decay starts after it); at least 1."""
    if config.decay_steps is not None:
        return config.decay_steps
    warmup = config.warmup_steps if config.name == "cosine" else 0
    return max(1, total_steps - warmup)


def build_schedule(config: ScheduleConfig, learning_rate: float, total_steps: int) -> Any:
    """A Keras learning-rate schedule, or the float itself for ``constant``; ``total_steps``
    is the run's length in optimizer steps (see :func:`resolve_decay_steps`)."""
    import keras

    schedules = keras.optimizers.schedules
    if config.name == "constant":
        return learning_rate
    if config.name == "piecewise":
        return schedules.PiecewiseConstantDecay(config.boundaries, config.values)
    decay_steps = resolve_decay_steps(config, total_steps)
    if config.name == "inverse_time":
        return schedules.InverseTimeDecay(
            learning_rate, decay_steps, config.decay_rate, staircase=config.staircase
        )
    if config.name == "exponential":
        return schedules.ExponentialDecay(
            learning_rate, decay_steps, config.decay_rate, staircase=config.staircase
        )
    # Cosine with linear warm-up from 0 (Keras' CosineDecay warms up from initial_lr).
    return schedules.CosineDecay(
        0.0 if config.warmup_steps else learning_rate,
        decay_steps,
        alpha=config.alpha,
        warmup_target=learning_rate if config.warmup_steps else None,
        warmup_steps=config.warmup_steps,
    )


def build_optimizer(config: OptimizerConfig, schedule: ScheduleConfig, total_steps: int) -> Any:
    """A Keras optimizer with the configured rule, schedule and clipping; ``total_steps``
    is the run's length in optimizer steps (the default decay length)."""
    import keras

    lr = build_schedule(schedule, config.learning_rate, total_steps)
    clip: dict[str, float] = {}
    if config.clipnorm is not None:
        clip["clipnorm"] = config.clipnorm
    if config.clipvalue is not None:
        clip["clipvalue"] = config.clipvalue
    opt = keras.optimizers
    if config.name == "sgd":
        return opt.SGD(lr, momentum=config.momentum, nesterov=config.nesterov, **clip)
    if config.name == "adagrad":
        return opt.Adagrad(lr, epsilon=config.epsilon, **clip)
    if config.name == "rmsprop":
        return opt.RMSprop(lr, rho=config.rho, momentum=config.momentum, epsilon=config.epsilon,
                           **clip)  # fmt: skip
    moments = {"beta_1": config.beta_1, "beta_2": config.beta_2, "epsilon": config.epsilon}
    if config.name == "adam":
        return opt.Adam(lr, **moments, **clip)
    if config.name == "nadam":
        return opt.Nadam(lr, **moments, **clip)
    return opt.AdamW(lr, weight_decay=config.weight_decay, **moments, **clip)


def current_learning_rate(optimizer: Any) -> float:
    """The learning rate at the optimizer's current step."""
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)
