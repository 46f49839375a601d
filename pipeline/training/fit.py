"""The one fit loop. Every algorithm that trains a policy (behaviour cloning, DAgger's
refits, tuning trials, transfer) builds its inputs and model and calls :func:`fit`.

It records the untrained model's validation loss and that of predicting the mean action
(the first sanity check of any fit), then runs ``model.fit`` with a checkpoint every
epoch (resumable bit for bit), optional early stopping, per-layer gradient norms and
per-epoch tracking, and stops at once with the last good checkpoint kept if the loss
becomes NaN or infinite. Given a judge (``training.selection``), it scores the policy in
closed loop every ``plan.rollout_every`` epochs and ends with the best-scored weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.tracking import NullTracker, Tracker

EpochCallback = Callable[[int, dict[str, float]], None]
"""Called after each epoch with its index (from 0) and its metrics."""


@dataclass(frozen=True)
class FitPlan:
    """How long and how to fit, fixed before the first step."""

    epochs: int
    """Epochs in all (a resumed fit continues up to this many)."""
    steps_per_epoch: int
    """Batches per epoch."""
    samples_per_epoch: int
    """Training samples per epoch (for throughput)."""
    checkpoint: Path
    """Directory of the resumable checkpoint, written every epoch."""
    early_stopping_patience: int | None = None
    """Stop after this many epochs without a better validation loss; None: never."""
    restore_best: bool = False
    """End with the weights of the best validation epoch instead of the last."""
    grad_norm_batches: int = 2
    """Validation batches the per-layer gradient norms are measured on."""
    rollout_every: int | None = None
    """Judge the policy every this many epochs and after the last (needs a judge)."""


@dataclass
class FitOutcome:
    """What a fit did."""

    epochs: int = 0
    """Epochs completed (resumed ones included)."""
    best_epoch: int = 0
    """Epoch with the best validation loss, counted from 1 (0: no epoch finished)."""
    best_val_loss: float = math.nan
    """Best validation loss, normalized action units."""
    final_train_loss: float = math.nan
    """Training loss of the last epoch."""
    initial_val_loss: float = math.nan
    """Validation loss of the untrained model."""
    mean_action_val_loss: float = math.nan
    """Validation loss of always predicting the training mean action (the baseline)."""
    stopped_early: bool = False
    """Whether early stopping ended the fit."""
    samples_per_s: float = math.nan
    """Mean training throughput."""
    history: dict[str, list[float]] = field(default_factory=dict)
    """Per-epoch metrics."""
    rollouts: list[dict[str, float]] = field(default_factory=list)
    """Closed-loop scores of the judged epochs (0-based ``epoch``), if a judge ran."""
    selected_epoch: int = 0
    """Epoch whose weights the judge chose, counted from 1 (0: no judge)."""
    rank_correlation: float = math.nan
    """Spearman correlation of validation loss and closed-loop score over the judged
    epochs (-1: the loss ranks checkpoints as the rollouts do)."""
    unselected_weights: list[Any] | None = None
    """The weights the fit would have ended with without the judge (the last epoch's, or
    the best validation epoch's with ``restore_best``), when the judge chose others."""


def restore_state(checkpoint: Path, model: Any) -> Any:
    """Load ``checkpoint`` into ``model`` (compiled, so its optimizer exists) and return the
    ``TrainState`` to resume from; one line if it does not fit the model."""
    from pipeline.training.callbacks import load_checkpoint

    try:
        return load_checkpoint(checkpoint, model)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"--resume {checkpoint.parent}: checkpoint unusable ({exc})") from None


def baseline_losses(model: Any, loss_fn: Any, val_data: Any) -> tuple[float, float]:
    """Validation loss of the untrained model and of predicting the mean action (0 in
    normalized units; with a Gaussian head, spread 1)."""
    import tensorflow as tf

    init, mean, n = 0.0, 0.0, 0
    for x, y in val_data:
        pred = model(x, training=False)
        init += float(loss_fn(y, pred)) * len(y)
        mean += float(loss_fn(y, tf.zeros_like(pred))) * len(y)
        n += len(y)
    return init / max(n, 1), mean / max(n, 1)


def fit(
    built: Any,
    train_data: Any,
    val_data: Any,
    plan: FitPlan,
    *,
    state: Any = None,
    tracker: Tracker | None = None,
    on_epoch: EpochCallback | None = None,
    judge: Any = None,
    score_key: Any = None,
) -> FitOutcome:
    """Fit ``built.train_model`` (compiled) on batches of ``(obs, normalized actions)``.

    ``state`` is a ``TrainState`` from :func:`restore_state` to resume; None starts fresh.
    Afterwards ``built.policy`` holds the weights the outcome describes: the last epoch's,
    the best validation epoch's with ``plan.restore_best``, or, with a ``judge``
    (:class:`~pipeline.training.checkpoint_selection.PolicyJudge`, scores ordered by ``score_key``)
    and ``plan.rollout_every``, the best closed-loop epoch's.
    """
    from pipeline.training.callbacks import (
        BEST_FILE,
        CheckpointAndEarlyStopping,
        EpochReporter,
        GradientNorms,
        TrainState,
        best_rollout_file,
    )
    from pipeline.training.checkpoint_selection import ClosedLoopSelection, rank_correlation

    tracker = tracker if tracker is not None else NullTracker()
    state = state if state is not None else TrainState()
    model = built.train_model
    if state.epochs_done == 0:
        # The untrained model's losses; a resumed fit reads them from its checkpoint.
        init_loss, mean_loss = baseline_losses(model, built.loss, val_data)
        state.initial_val_loss, state.mean_action_val_loss = init_loss, mean_loss
        tracker.log_metrics({"sanity/initial_val_loss": init_loss,
                             "sanity/mean_action_val_loss": mean_loss}, step=0)  # fmt: skip
    grad_batches = [(x, y) for x, y in val_data.take(plan.grad_norm_batches)]
    callbacks = [
        GradientNorms(grad_batches, built.loss),
        EpochReporter(tracker, plan.samples_per_epoch, on_epoch),
        # Not Keras' EarlyStopping, which cannot resume (its wait count and best weights
        # live in memory), nor TerminateOnNaN, which prints to stdout and makes Keras copy
        # every batch's loss to the host: this one checks each epoch's loss, keeps the last
        # good checkpoint and records where the loss diverged.
        CheckpointAndEarlyStopping(plan.checkpoint, state, plan.early_stopping_patience),
    ]
    selection = None
    if judge is not None and plan.rollout_every is not None:
        selection = ClosedLoopSelection(judge, score_key, built.policy, plan.rollout_every,
                                        plan.epochs, plan.checkpoint, state)  # fmt: skip
        callbacks.insert(1, selection)  # before the reporter logs and the checkpoint saves
    if state.epochs_done < plan.epochs and not state.stopped_early:
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=plan.epochs,
            initial_epoch=state.epochs_done,
            shuffle=False,  # the input pipeline shuffles; Keras would warn and ignore it
            steps_per_epoch=plan.steps_per_epoch,
            callbacks=callbacks,
            verbose=0,
        )
    if state.diverged_epoch is not None:
        raise PipelineError(
            f"training diverged: the loss became NaN/Inf in epoch {state.diverged_epoch + 1}; "
            f"the last good checkpoint is kept in {plan.checkpoint} (lower "
            "optimizer.learning_rate or set optimizer.clipnorm)"
        )
    if selection is not None:
        _judge_last_epoch(selection, state, tracker)
    restore = plan.restore_best and (plan.checkpoint / BEST_FILE).exists()
    if restore:
        model.load_weights(plan.checkpoint / BEST_FILE)
    unselected = None
    if selection is not None and state.best_rollout_epoch >= 0:
        plain_epoch = state.best_epoch if restore else state.epochs_done - 1
        if plain_epoch != state.best_rollout_epoch:
            unselected = built.policy.get_weights()
        model.load_weights(plan.checkpoint / best_rollout_file(state.best_rollout_epoch))
    losses = state.history.get("loss") or [math.nan]
    rates = state.history.get("samples_per_s") or [math.nan]
    return FitOutcome(
        epochs=state.epochs_done,
        best_epoch=state.best_epoch + 1,  # users count epochs from 1
        best_val_loss=state.best_val_loss,
        final_train_loss=losses[-1],
        initial_val_loss=state.initial_val_loss,
        mean_action_val_loss=state.mean_action_val_loss,
        stopped_early=state.stopped_early,
        samples_per_s=float(np.mean(rates)),
        history=state.history,
        rollouts=list(state.rollouts),
        selected_epoch=state.best_rollout_epoch + 1 if selection is not None else 0,
        rank_correlation=(
            rank_correlation(state.rollouts, score_key) if selection is not None else math.nan
        ),
        unselected_weights=unselected,
    )


def _judge_last_epoch(selection: Any, state: Any, tracker: Tracker) -> None:
    """Early stopping can end the fit between two judged epochs: judge the last one too."""
    last = state.epochs_done - 1
    if last < 0 or any(r["epoch"] == last for r in state.rollouts):
        return
    val_losses = state.history.get("val_loss") or state.history.get("loss") or [math.nan]
    metrics = selection.judge_now(last, float(val_losses[-1]))
    tracker.log_metrics(metrics, step=last)
