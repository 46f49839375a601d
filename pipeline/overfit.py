"""``pipeline train --overfit-batch``: can the model fit one batch? (A classic check:
a network that cannot drive the loss of a single batch near zero has a bug or too little
capacity, and no amount of data will help it.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from pipeline.config import TrainConfig
from pipeline.outputs import check_output_path, write_json

STEPS = 300
NEAR_ZERO = 0.05
"""Success: the final loss is below this fraction of the initial loss."""


def overfit_one_batch(data: Path, config: TrainConfig, steps: int = STEPS) -> dict[str, Any]:
    """Train a fresh model on the first training batch for ``steps`` steps (no dropout
    of data: the batch is fixed) and report the initial and final value of the judged
    quantity: the mean action's squared error where the model reports it (a Gaussian
    log-likelihood loss can be negative, so a ratio of losses means nothing), else the
    loss."""
    from datasets import open_dataset
    from datasets.training.splits import split_episodes
    from datasets.training.tfdata import make_tf_dataset
    from models import build_policy
    from pipeline.optim import build_optimizer
    from pipeline.train import _build_spec, _normalize_targets, check_dataset, configure_tensorflow

    check_dataset(data)
    configure_tensorflow(config)
    with open_dataset(data) as ds:
        ids = ds.episode_ids()
    train_ids, _ = split_episodes(ids, config.data.val_fraction, config.seed)
    spec, _ = _build_spec(config, data, train_ids, "")
    batch_data = make_tf_dataset(
        data, train_ids, batch_size=config.data.batch_size, seed=config.seed,
        history=config.data.history, training=True)  # fmt: skip
    x, y = next(iter(_normalize_targets(batch_data, spec)))
    built = build_policy(config.model, spec, seed=config.seed)
    model = built.train_model
    optimizer = build_optimizer(config.optimizer, config.schedule, total_steps=steps)
    model.compile(optimizer=optimizer, loss=built.loss, metrics=built.metrics)
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


def run_overfit_command(
    data: Path,
    config: TrainConfig,
    json_path: Path | None,
    console: Console,
    overwrite: bool = False,
) -> int:
    """Print the verdict; exit code 1 when the loss does not approach zero."""
    if json_path is not None:
        check_output_path(json_path, "--json", (".json",), overwrite=overwrite)
    report = overfit_one_batch(data, config)
    verdict = "yes" if report["near_zero"] else "NO (check the model and the data)"
    console.print(
        f"overfit one batch of {report['batch_size']} for {report['steps']} steps: "
        f"{report['criterion']} "
        f"{report['initial_loss']:.4f} -> {report['final_loss']:.4f} "
        f"({100 * report['ratio']:.1f}% of the initial); near zero: {verdict}"
    )
    if json_path is not None:
        write_json(json_path, {"command": "train --overfit-batch", **report})
    return 0 if report["near_zero"] else 1
