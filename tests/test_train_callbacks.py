"""Training pieces on their own: the gradient-norm callback leaves the model as it found
it, and learning-rate schedules follow the run's length unless told otherwise."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.training.callbacks import GradientNorms
from pipeline.training.config import load_config
from pipeline.training.optim import build_schedule, resolve_decay_steps


def test_gradient_norms_change_no_non_trainable_variable():
    """Validation batches must not leak into the batch-norm moving statistics or advance
    the dropout generator (both are saved with the policy and the checkpoint)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(8), keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.3, seed=1), keras.layers.Dense(2),
    ])  # fmt: skip
    rng = np.random.default_rng(0)
    # Far from the initial moving mean 0 / variance 1, so one update would show.
    batches = [(rng.normal(5.0, 3.0, (16, 6)).astype(np.float32),
                rng.normal(size=(16, 2)).astype(np.float32)) for _ in range(2)]  # fmt: skip
    before = [np.array(v.numpy(), copy=True) for v in model.non_trainable_variables]
    names = [v.path for v in model.non_trainable_variables]
    assert any("moving_mean" in n for n in names) and any("seed" in n for n in names), names
    callback = GradientNorms(batches, keras.losses.MeanSquaredError())
    callback.set_model(model)
    norms = callback.compute()
    assert norms and all(np.isfinite(v) and v > 0 for v in norms.values())
    for name, old, variable in zip(names, before, model.non_trainable_variables, strict=True):
        np.testing.assert_array_equal(variable.numpy(), old, err_msg=name)
    # The same measurement twice gives the same norms: the dropout masks did not move on.
    assert callback.compute() == norms


@pytest.mark.parametrize("warmup", [0, 10])
def test_cosine_without_decay_steps_ends_at_alpha_on_the_last_step(warmup):
    schedule = load_config(None, ["schedule.name=cosine", "schedule.alpha=0.1",
                                  f"schedule.warmup_steps={warmup}"]).schedule  # fmt: skip
    assert schedule.decay_steps is None
    assert resolve_decay_steps(schedule, 100) == 100 - warmup
    lr = build_schedule(schedule, 1e-3, total_steps=100)
    assert float(lr(100)) == pytest.approx(1e-4, rel=1e-5)
    assert float(lr(50)) > 1e-4


def test_explicit_decay_steps_still_apply():
    config = load_config(None, ["schedule.name=cosine", "schedule.decay_steps=20000",
                                "schedule.alpha=0.05"])  # fmt: skip
    assert resolve_decay_steps(config.schedule, 100) == 20000
    lr = build_schedule(config.schedule, 1e-3, total_steps=100)
    assert float(lr(100)) > 0.99e-3
    exponential = load_config(None, ["schedule.name=exponential", "schedule.decay_rate=0.5"])
    lr = build_schedule(exponential.schedule, 1e-3, total_steps=40)
    assert float(lr(40)) == pytest.approx(0.5e-3, rel=1e-5)
