"""Keras callbacks of the training stage: resumable checkpoints with early stopping,
per-layer gradient norms, and per-epoch tracking.

A checkpoint holds everything an uninterrupted run would still have in memory at the
end of an epoch: the weights, the optimizer's variables (moments and step count, hence
the schedule position), the early-stopping state with the best weights, and the metric
history. It is written to a temporary folder and renamed into place, so a kill during
the write leaves the previous checkpoint.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

STATE_FILE = "state.json"
VARIABLES_FILE = "model_variables.npz"
BEST_FILE = "best.weights.h5"


def best_rollout_file(epoch: int) -> str:
    """Weights of the best closed-loop epoch (0-based ``epoch``). Named by epoch, so a kill
    between judging an epoch and saving its checkpoint leaves no file that the saved state
    would misattribute."""
    return f"best_rollout_e{epoch:04d}.weights.h5"


OPTIMIZER_FILE = "optimizer.npz"


@dataclass
class TrainState:
    """Progress that must survive a kill."""

    epochs_done: int = 0
    """Completed epochs."""
    best_val_loss: float = math.inf
    """Best validation loss so far."""
    best_epoch: int = -1
    """Epoch (0-based) of the best validation loss."""
    wait: int = 0
    """Epochs since the last improvement."""
    history: dict[str, list[float]] = field(default_factory=dict)
    """Per-epoch metrics."""
    stopped_early: bool = False
    """Whether early stopping ended the run."""
    diverged_epoch: int | None = None
    """Epoch at which the loss became NaN/Inf, if it did."""
    initial_val_loss: float = math.nan
    """Validation loss of the untrained model (kept so a resumed run still reports it)."""
    mean_action_val_loss: float = math.nan
    """Validation loss of predicting the training mean action."""
    rollouts: list[dict[str, float]] = field(default_factory=list)
    """Closed-loop scores of the judged epochs (``epoch``, ``val_loss`` and the judge's)."""
    best_rollout_epoch: int = -1
    """Epoch (0-based) of the best closed-loop score; -1: none judged."""


def save_checkpoint(directory: Path, model: keras.Model, state: TrainState) -> None:
    """Atomically replace ``directory`` with the current weights, optimizer and state."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # model.variables, not only the weights: it includes the dropout layers' random
    # generator states, without which a resumed run drops different units.
    _save_variables(tmp / VARIABLES_FILE, model.variables)
    _save_variables(tmp / OPTIMIZER_FILE, model.optimizer.variables)
    for name in (BEST_FILE, best_rollout_file(state.best_rollout_epoch)):
        if (directory / name).exists():
            shutil.copy2(directory / name, tmp / name)
    (tmp / STATE_FILE).write_text(json.dumps(asdict(state)))
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(directory: Path, model: keras.Model) -> TrainState:
    """Restore weights, optimizer variables and state saved by :func:`save_checkpoint`."""
    state = TrainState(**json.loads((directory / STATE_FILE).read_text()))
    _load_variables(directory / VARIABLES_FILE, model.variables, "model")
    model.optimizer.build(model.trainable_variables)
    _load_variables(directory / OPTIMIZER_FILE, model.optimizer.variables, "optimizer")
    return state


def _save_variables(path: Path, variables: list[Any]) -> None:
    np.savez(path, **{f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(variables)})


def _load_variables(path: Path, variables: list[Any], what: str) -> None:
    saved = np.load(path)
    if len(saved.files) != len(variables):
        raise ValueError(f"{path}: saved {what} state does not match the configured {what}")
    for i, variable in enumerate(variables):
        value = saved[f"v{i:04d}"]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{path}: saved {what} state does not match the configured {what}")
        variable.assign(value)


class CheckpointAndEarlyStopping(keras.callbacks.Callback):
    """Saves a checkpoint every epoch, tracks the best weights, stops early."""

    def __init__(self, directory: Path, state: TrainState, patience: int | None) -> None:
        super().__init__()
        self.directory = directory
        self.state = state
        self.patience = patience

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        loss = float(logs.get("loss", math.nan))
        if not math.isfinite(loss):
            # Keep the last good checkpoint: this epoch's weights are not worth saving.
            self.state.diverged_epoch = epoch
            self.model.stop_training = True
            return
        for key, value in logs.items():
            if not key.startswith("rollout/"):  # only some epochs: kept in state.rollouts
                self.state.history.setdefault(key, []).append(float(value))
        val = float(logs.get("val_loss", loss))
        self.state.epochs_done = epoch + 1
        if val < self.state.best_val_loss:
            self.state.best_val_loss, self.state.best_epoch, self.state.wait = val, epoch, 0
            self.directory.mkdir(parents=True, exist_ok=True)
            self.model.save_weights(self.directory / BEST_FILE)
        else:
            self.state.wait += 1
            if self.patience is not None and self.state.wait >= self.patience:
                self.state.stopped_early = True
                self.model.stop_training = True
        save_checkpoint(self.directory, self.model, self.state)


def _layer_of(variable: Any) -> str:
    path = getattr(variable, "path", variable.name)
    return path.split("/")[0]


class GradientNorms(keras.callbacks.Callback):
    """Per-layer gradient L2 norms on a fixed set of batches at the end of every epoch:
    vanishing gradients show as norms shrinking towards 0 layer after layer, exploding
    ones as norms growing without bound."""

    def __init__(self, batches: list[tuple[np.ndarray, np.ndarray]], loss_fn: Any) -> None:
        super().__init__()
        self.batches = batches
        self.loss_fn = loss_fn
        self.latest: dict[str, float] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        del epoch
        self.latest = self.compute()
        if logs is not None:
            logs.update({f"grad_norm/{k}": v for k, v in self.latest.items()})

    def compute(self) -> dict[str, float]:
        """Gradients as training sees them (``training=True``: dropout on, batch statistics),
        leaving no trace: a training-mode call also moves the batch-norm moving statistics
        towards these validation batches and advances the dropout generators, so every
        non-trainable variable is put back afterwards."""
        squares: dict[str, float] = {}
        variables = self.model.trainable_variables
        frozen = self.model.non_trainable_variables
        saved = [np.array(v.numpy(), copy=True) for v in frozen]
        try:
            for x, y in self.batches:
                with tf.GradientTape() as tape:
                    loss = self.loss_fn(y, self.model(x, training=True))
                for variable, grad in zip(variables, tape.gradient(loss, variables), strict=True):
                    if grad is not None:
                        key = _layer_of(variable)
                        squares[key] = squares.get(key, 0.0) + float(tf.reduce_sum(grad**2))
        finally:
            for variable, value in zip(frozen, saved, strict=True):
                variable.assign(value)
        n = max(len(self.batches), 1)
        return {k: math.sqrt(v / n) for k, v in squares.items()}


class EpochReporter(keras.callbacks.Callback):
    """Logs learning rate, throughput and all epoch metrics (``train/``, ``val/``) to the
    tracker and reports each epoch to a progress callback."""

    def __init__(self, tracker: Any, samples_per_epoch: int, on_epoch: Any = None) -> None:
        super().__init__()
        self.tracker = tracker
        self.samples_per_epoch = samples_per_epoch
        self.on_epoch = on_epoch
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from pipeline.training.optim import current_learning_rate

        logs = logs if logs is not None else {}
        seconds = time.perf_counter() - self._start
        logs["lr"] = current_learning_rate(self.model.optimizer)
        logs["samples_per_s"] = self.samples_per_epoch / seconds if seconds > 0 else math.nan
        metrics = {}
        for key, value in logs.items():
            name = key
            if key == "loss":
                name = "train/loss"
            elif key.startswith("val_"):
                name = "val/" + key[4:]
            metrics[name] = float(value)
        self.tracker.log_metrics(metrics, step=epoch)
        if self.on_epoch:
            self.on_epoch(epoch, metrics)
