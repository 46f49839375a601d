"""One trial of ``pipeline tune``: a real ``pipeline train`` run with the trial's parameters,
then its objective, in a fresh process of its own (TensorFlow and MLflow keep process-wide
state, so trials never share a process)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

OBJECTIVES = ("val_loss", "closed_loop")


@dataclass(frozen=True)
class TrialTask:
    """Everything a trial process needs (plain data: it crosses a process boundary)."""

    number: int
    """Optuna's trial number."""
    stage: str
    """``coarse`` or ``fine``."""
    params: dict[str, Any]
    """Dotted config key -> sampled value."""
    data: str
    base_config: str | None
    base_overrides: tuple[str, ...]
    out: str
    """The trial's training run directory."""
    objective: str
    rollout_episodes: int
    tracking_uri: str | None
    parent_run_id: str | None
    threads: int = 1
    """TensorFlow intra- and inter-op threads of the trial process."""
    env_id: str | None = None
    """The env the data was recorded in: its recipe is the base without ``base_config``."""


@dataclass
class TrialResult:
    """What a trial measured."""

    number: int
    stage: str
    params: dict[str, Any]
    value: float
    """The objective: validation loss (minimized) or the closed-loop score (maximized)."""
    val_loss: float
    train_s: float
    eval_s: float
    """Seconds of the closed-loop evaluation (0 for ``val_loss``)."""
    closed_loop: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None


def overrides_of(params: dict[str, Any]) -> list[str]:
    """``key=value`` overrides (values in YAML flow style, as the command line takes them)."""
    out = []
    for key, value in params.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        out.append(f"{key}={text.removesuffix('...').strip()}")
    return out


def closed_loop_value(score: dict[str, float]) -> float:
    """One number that orders closed-loop scores as ``score_key`` does: survival (steps of
    1/episodes, at least 0.001 apart up to 1000 episodes) plus a ten-thousandth of the second
    key clipped to [-1, 2], so the tie-break never outweighs one more surviving episode."""
    from pipeline.rollout.closed_loop_judge import score_key

    survival, second = score_key(score)
    tie = max(-1.0, min(2.0, second)) if math.isfinite(second) else -1.0
    return survival + 1e-4 * tie


def run_trial(task: TrialTask) -> TrialResult:
    """Train, then measure the objective (called in the trial's own process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["OPENBLAS_NUM_THREADS"] = str(task.threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(task.threads)
    tf.config.threading.set_inter_op_parallelism_threads(task.threads)
    from pipeline.algorithms.behaviour_cloning import train_from_file
    from pipeline.algorithms.train_config import resolve_train_config

    base = Path(task.base_config) if task.base_config else None
    config = resolve_train_config(
        base, [*task.base_overrides, *overrides_of(task.params)], env_id=task.env_id
    )
    start = time.perf_counter()
    result = train_from_file(Path(task.data), config, Path(task.out),
                             tracking_uri=task.tracking_uri,
                             parent_run_id=task.parent_run_id)  # fmt: skip
    train_s = time.perf_counter() - start
    val_loss = float(result.best_val_loss)
    if task.objective == "val_loss":
        return TrialResult(task.number, task.stage, task.params, val_loss, val_loss, train_s,
                           0.0, run_id=result.run_id)  # fmt: skip
    from models import load_policy
    from pipeline.rollout.closed_loop_judge import ClosedLoopJudge

    start = time.perf_counter()
    loaded = load_policy(Path(task.out) / "policy")
    judge = ClosedLoopJudge(loaded.spec.env_id, loaded.spec, task.rollout_episodes,
                            config.training.rollout_seed, workers=1)  # fmt: skip
    score = judge(loaded.model)
    return TrialResult(task.number, task.stage, task.params, closed_loop_value(score), val_loss,
                       train_s, time.perf_counter() - start, closed_loop=score,
                       run_id=result.run_id)  # fmt: skip
