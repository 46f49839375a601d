"""Closed-loop checkpoint selection inside the fit loop.

Every ``every`` epochs (and after the last) a judge scores the policy with its current
weights, e.g. by rolling it out in the simulation; the weights of the best-scored epoch are
kept beside the checkpoint and become the fit's result. Scores are ordered by a key the
judge supplies (survival, then normalized distance, for rollouts). The scores live in the
resumable training state, so a resumed fit keeps its best checkpoint and its curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import keras

from pipeline.training.callbacks import best_rollout_file


class PolicyJudge(Protocol):
    """Scores a policy model (higher :meth:`key` is better)."""

    def __call__(self, model: Any) -> dict[str, float]: ...


ScoreKey = Callable[[dict[str, float]], tuple[float, ...]]


class ClosedLoopSelection(keras.callbacks.Callback):
    """Judges the policy every ``every`` epochs and on the last one; keeps the best."""

    def __init__(
        self, judge: PolicyJudge, key: ScoreKey, policy: Any, every: int, epochs: int,
        directory: Path, state: Any,
    ) -> None:  # fmt: skip
        super().__init__()
        self.judge, self.key, self.policy = judge, key, policy
        self.every, self.epochs = every, epochs
        self.directory = directory
        self.state = state

    def due(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) is judged."""
        return (epoch + 1) % self.every == 0 or epoch + 1 == self.epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        loss = float(logs.get("loss", math.nan))
        if not self.due(epoch) or not math.isfinite(loss):
            return
        logs.update(self.judge_now(epoch, float(logs.get("val_loss", loss))))

    def judge_now(self, epoch: int, val_loss: float) -> dict[str, float]:
        """Score the current weights as epoch ``epoch``; keep them if best. Returns the
        metrics to log."""
        score = self.judge(self.policy)
        rollouts = self.state.rollouts
        best = next((r for r in rollouts if r["epoch"] == self.state.best_rollout_epoch), None)
        rollouts.append({"epoch": epoch, "val_loss": val_loss, **score})
        if best is None or self.key(score) > self.key(best):
            self.state.best_rollout_epoch = epoch
            self.directory.mkdir(parents=True, exist_ok=True)
            self.model.save_weights(self.directory / best_rollout_file(epoch))
        return {f"rollout/{name}": value for name, value in score.items()}


def rank_correlation(rollouts: list[dict[str, float]], key: ScoreKey) -> float:
    """Spearman's rank correlation between validation loss and rollout score over the
    judged checkpoints: -1 when a lower loss always scored better, 0 when the loss says
    nothing about the score; NaN with fewer than 3 checkpoints or a constant column."""
    if len(rollouts) < 3:
        return math.nan
    from scipy.stats import spearmanr

    keys = sorted({key(r) for r in rollouts})
    ranks = [keys.index(key(r)) for r in rollouts]
    losses = [r["val_loss"] for r in rollouts]
    if len(set(ranks)) < 2 or len(set(losses)) < 2:
        return math.nan
    return float(spearmanr(losses, ranks).statistic)
