"""``pipeline train --overfit-batch``: can the model fit one batch? (A classic check:
a network that cannot drive the loss of a single batch near zero has a bug or too little
capacity, and no amount of data will help it.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset
from pipeline.training.config import TrainConfig

STEPS = 300
NEAR_ZERO = 0.05
"""Success: the final loss is below this fraction of the initial loss."""


def overfit_one_batch(
    data: Path | Dataset, config: TrainConfig, steps: int = STEPS
) -> dict[str, Any]:
    """Train a fresh model on the first training batch for ``steps`` steps (no dropout
    of data: the batch is fixed) and report the initial and final value of the judged
    quantity: the mean action's squared error where the model reports it (a Gaussian
    log-likelihood loss can be negative, so a ratio of losses means nothing), else the
    loss."""
    from pipeline.training.inputs import TrainingInputs, dataset_digest, open_training_data
    from pipeline.training.model import build_model
    from pipeline.training.runtime import training_runtime

    if not isinstance(data, Dataset):
        with open_training_data(Path(data)) as ds:
            return overfit_one_batch(ds, config, steps)
    ds = data
    with training_runtime(config):
        inputs = TrainingInputs.prepare(ds, config, dataset_digest(ds))
        x, y = next(iter(inputs.train_batches()))
        built = build_model(config, inputs.spec, total_steps=steps)
        return _overfit(built, x, y, steps)


def _overfit(built: Any, x: Any, y: Any, steps: int) -> dict[str, Any]:
    model = built.train_model
    criterion = "action_mse" if any(m.name == "action_mse" for m in built.metrics) else "loss"
    initial = model.evaluate(x, y, verbose=0, return_dict=True)[criterion]
    import tensorflow as tf

    # One epoch of the same batch repeated: per-epoch overhead paid once, not ``steps`` times.
    repeated = tf.data.Dataset.from_tensors((x, y)).repeat(steps)
    model.fit(repeated, epochs=1, verbose=0, shuffle=False)  # the batch is fixed; Keras warns
    final = model.evaluate(x, y, verbose=0, return_dict=True)[criterion]
    initial, final = float(initial), float(final)
    return {
        "batch_size": len(x),
        "steps": steps,
        "criterion": criterion,
        "initial_loss": initial,
        "final_loss": final,
        "ratio": final / initial if initial > 0 else float("nan"),
        "near_zero": final < NEAR_ZERO * initial,
    }
