"""Behaviour cloning (``pipeline train``): demonstrations -> a Keras policy that reloads alone.

Steps: validate the dataset and open it once; split it by episode; compute normalization
statistics on the training split in one streaming pass (``training.inputs``); build the
policy with normalization inside; fit it with the one fit loop (``training.fit``:
checkpoints every epoch, resumable, early stopping, per-layer gradient norms); save the
policy with its spec and resolved config; track everything in MLflow.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets import Dataset
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_dir, write_json
from pipeline.core.run_files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    POLICY_DIR,
    TRAINING_RUN_FILE,
    UNSELECTED_POLICY_DIR,
)
from pipeline.rollout.closed_loop_judge import ClosedLoopJudge, score_key
from pipeline.rollout.policy_source import ResolvedPolicy, is_mlflow_uri, resolve_policy_source
from pipeline.tracking import Tracker, open_tracker, portable_uri, resolve_tracking_uri, run_name
from pipeline.training.config import TrainConfig, config_to_dict, save_config
from pipeline.training.fit import EpochCallback, FitPlan, fit, restore_state
from pipeline.training.inputs import (
    TrainingInputs,
    dataset_digest,
    mirror_map,
    open_training_data,
)
from pipeline.training.model import build_model, keep_source_normalization
from pipeline.training.resume import (
    check_resume_config,
    check_resume_record,
    read_run_start,
    write_run_start,
)
from pipeline.training.runtime import training_runtime

if TYPE_CHECKING:
    from models.spec import PolicySpec


@dataclass
class TrainResult:
    """What a training run produced."""

    out_dir: str
    """Run directory (policy, config, checkpoint, plots)."""
    policy_dir: str
    """Saved policy directory."""
    epochs: int = 0
    """Epochs completed."""
    best_epoch: int = 0
    """Epoch with the best validation loss, counted from 1 as in the results table (0: no
    epoch finished)."""
    best_val_loss: float = math.nan
    """Best validation loss, normalized action units."""
    final_train_loss: float = math.nan
    """Training loss of the last epoch."""
    initial_val_loss: float = math.nan
    """Validation loss of the untrained model."""
    mean_action_val_loss: float = math.nan
    """Validation loss of always predicting the training mean action (the baseline)."""
    stopped_early: bool = False
    """Whether early stopping ended training."""
    resumed_from_epoch: int = 0
    """Epochs already done when this call started (0 unless --resume)."""
    train_episodes: int = 0
    """Episodes in the training split."""
    val_episodes: int = 0
    """Episodes in the validation split."""
    train_samples: int = 0
    """Samples per training epoch."""
    device: str = "CPU"
    """Where training ran."""
    samples_per_s: float = math.nan
    """Mean training throughput."""
    run_id: str | None = None
    """MLflow run id (None without tracking)."""
    model_uri: str | None = None
    """MLflow model URI of the logged policy."""
    wall_s: float = 0.0
    """Wall-clock seconds."""
    history: dict[str, list[float]] = field(default_factory=dict)
    """Per-epoch metrics."""
    init_from: dict[str, Any] | None = None
    """The policy the weights started from (``init.from_policy``), resolved; None: fresh."""
    rollouts: list[dict[str, float]] = field(default_factory=list)
    """Closed-loop checks (``training.rollout_every``): epoch (from 0), validation loss,
    survival, normalized distance and distance of each."""
    selected_epoch: int = 0
    """The epoch (from 1) whose weights were saved by closed-loop selection; 0: none."""
    rank_correlation: float = math.nan
    """Spearman correlation of validation loss and closed-loop score over the checks (-1:
    the loss ranks the checkpoints as the rollouts do, 0: it says nothing about them)."""


def prepare_out_dir(out: Path, resume: bool) -> None:
    """A new run directory (never an existing one) or, with resume, an existing run."""
    if resume:
        if not (out / CHECKPOINT_DIR).is_dir():
            raise PipelineError(f"--resume: nothing to resume in {out} (no checkpoint)")
        return
    check_output_dir(out, "--out")  # missing folders are created when training starts
    if out.exists() and any(out.iterdir()):
        raise PipelineError(f"--out {out}: already exists; choose another --out or use --resume")


def train(
    ds: Dataset,
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    tracking_uri: str | None = None,
    on_epoch: EpochCallback | None = None,
    parent_run_id: str | None = None,
    on_start: Callable[[], None] | None = None,
) -> TrainResult:
    """Train a policy on the open dataset ``ds`` into ``out``; see the module docstring.

    ``ds`` comes from :func:`~pipeline.training.inputs.open_training_data` (read, never
    reopened, here); the caller closes it. Every check of ``out`` and of a resume runs here,
    once, before anything is written. ``tracking_uri`` None trains without tracking (resolve
    and check it first with :func:`pipeline.tracking.prepare`). With ``resume``, ``config``
    must equal the run's ``config.yaml``, and nothing in ``out`` or in MLflow changes before
    the checkpoint has loaded; the MLflow run recorded in ``run_start.json`` is continued.
    The process-wide TensorFlow and MLflow settings a run changes are restored when it ends,
    so several trainings can run in one process. ``parent_run_id`` nests the MLflow run
    under another (a search trial under its study). ``on_start`` is called once the checks
    have passed, before the statistics pass (a progress bar starts its clock there).
    """
    start = time.perf_counter()
    mirror_map(config, ds.metadata.env_id)  # refused before anything is written
    prepare_out_dir(out, resume)
    uri = portable_uri(tracking_uri) if tracking_uri is not None else None
    record: dict[str, Any] = {}
    if resume:
        check_resume_config(out, config)
        record = read_run_start(out)
    digest = dataset_digest(ds)
    if resume:
        check_resume_record(out, record, ds.path, digest, uri)
    if on_start is not None:
        on_start()
    with _init_source(config, uri) as source, training_runtime(config) as device:
        inputs = TrainingInputs.prepare(ds, config, digest)
        if source is not None and config.init.keep_normalization:
            inputs.spec = keep_source_normalization(inputs.spec, source.loaded.spec,
                                                    source.source)  # fmt: skip
        result = _train_on(inputs, config, out, device=device, resume=resume, uri=uri,
                           record=record, on_epoch=on_epoch, source=source,
                           parent_run_id=parent_run_id)  # fmt: skip
    result.wall_s = time.perf_counter() - start
    return result


@contextlib.contextmanager
def _init_source(config: TrainConfig, uri: str | None) -> Iterator[ResolvedPolicy | None]:
    """The policy ``init.from_policy`` names, loaded (an MLflow one downloaded for the
    length of the block), or None to start from the seed."""
    text = config.init.from_policy
    if text is None:
        yield None
        return
    lookup = uri
    if lookup is None and is_mlflow_uri(text):  # --no-track: still look it up in the store
        lookup = resolve_tracking_uri(config.tracking.tracking_uri)
    source = resolve_policy_source(text, lookup, option="--init-from")
    try:
        yield source
    finally:
        if source.download_dir is not None:
            shutil.rmtree(source.download_dir, ignore_errors=True)


def _provenance(config: TrainConfig, source: ResolvedPolicy | None) -> dict[str, Any] | None:
    """Where the initial weights came from, for the run record and MLflow."""
    if source is None:
        return None
    return {"policy": source.source, "directory": str(source.loaded.directory),
            "training_run_id": source.training_run_id, "freeze": config.init.freeze,
            "keep_normalization": config.init.keep_normalization}  # fmt: skip


def _train_on(
    inputs: TrainingInputs, config: TrainConfig, out: Path, *, device: str, resume: bool,
    uri: str | None, record: dict[str, Any], on_epoch: EpochCallback | None,
    source: ResolvedPolicy | None, parent_run_id: str | None = None,
) -> TrainResult:  # fmt: skip
    plan = FitPlan(
        epochs=config.training.epochs, steps_per_epoch=inputs.steps_per_epoch,
        samples_per_epoch=inputs.train_samples, checkpoint=out / CHECKPOINT_DIR,
        early_stopping_patience=config.training.early_stopping_patience,
        restore_best=config.training.restore_best,
        grad_norm_batches=config.training.grad_norm_batches,
        rollout_every=config.training.rollout_every,
    )  # fmt: skip
    built = build_model(config, inputs.spec, plan.epochs * plan.steps_per_epoch,
                        source.loaded if source is not None else None)  # fmt: skip
    state = restore_state(plan.checkpoint, built.train_model) if resume else None
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / CONFIG_FILE)
    env_id = inputs.env_id
    result = TrainResult(out_dir=str(out), policy_dir=str(out / POLICY_DIR), device=device,
                         train_episodes=len(inputs.train_ids), val_episodes=len(inputs.val_ids),
                         train_samples=inputs.train_samples,
                         resumed_from_epoch=state.epochs_done if state else 0,
                         init_from=_provenance(config, source))  # fmt: skip
    tags = {"stage": "train", "env_id": env_id, "device": device, "model": config.model.name}
    if source is not None:
        tags["init_from"] = source.source
    name = run_name("train", env_id, config.model.name, f"seed{config.seed}")
    with open_tracker(uri, config.tracking.experiment, name, tags=tags,
                      parent_run_id=parent_run_id,
                      resume_run_id=record.get("run_id") if uri else None) as tracker:  # fmt: skip
        result.run_id = tracker.run_id
        if tracker.run_id is None or tracker.run_id != record.get("run_id"):
            # A new run: record it at once, so that a resume after a kill continues it.
            write_run_start(
                out, tracker.run_id, uri, config.tracking.experiment, inputs.spec.stats_digest
            )
            _log_run_inputs(tracker, config, inputs)
        train_data = inputs.train_batches(result.resumed_from_epoch)
        judge = _closed_loop_judge(config, inputs)
        outcome = fit(built, train_data, inputs.val_batches(), plan, state=state,
                      tracker=tracker, on_epoch=on_epoch, judge=judge,
                      score_key=score_key)  # fmt: skip
        # Field by field, not asdict: that would deep-copy the unselected weights for nothing.
        for name in (f.name for f in fields(outcome) if f.name != "unselected_weights"):
            setattr(result, name, getattr(outcome, name))
        _save_outputs(config, out, inputs.spec, built.policy, tracker, result)
        if outcome.unselected_weights is not None:
            _save_unselected_policy(config, out, inputs.spec, built.policy,
                                    outcome.unselected_weights)  # fmt: skip
    return result


def _save_unselected_policy(
    config: TrainConfig, out: Path, spec: PolicySpec, policy: Any, weights: list[Any]
) -> None:
    """``out/policy_without_selection``: what the run would have saved without closed-loop
    selection, beside the selected policy."""
    from models import save_policy

    selected = policy.get_weights()
    policy.set_weights(weights)
    try:
        save_policy(
            out / UNSELECTED_POLICY_DIR, policy, spec, config_to_dict(config), overwrite=True
        )
    finally:
        policy.set_weights(selected)


def _closed_loop_judge(config: TrainConfig, inputs: TrainingInputs) -> ClosedLoopJudge | None:
    """The judge of closed-loop checkpoint selection, if ``training.rollout_every`` asks."""
    training = config.training
    if training.rollout_every is None:
        return None
    return ClosedLoopJudge(inputs.env_id, inputs.spec, training.rollout_episodes,
                           training.rollout_seed, training.rollout_workers)  # fmt: skip


def _log_run_inputs(tracker: Tracker, config: TrainConfig, inputs: TrainingInputs) -> None:
    from pipeline.training.optim import resolve_decay_steps

    tracker.log_params(config_to_dict(config))
    if config.schedule.name in ("inverse_time", "exponential", "cosine"):
        total = config.training.epochs * inputs.steps_per_epoch
        tracker.log_params({"schedule.resolved_decay_steps":
                            resolve_decay_steps(config.schedule, total)})  # fmt: skip
    tracker.log_dataset_info(inputs.ds.path, inputs.spec.stats_digest, len(inputs.episode_ids),
                             inputs.total_steps)  # fmt: skip
    tracker.log_dict(config_to_dict(config), "config.json")
    tracker.log_dict(inputs.spec.to_dict(), "spec.json")


def _save_outputs(
    config: TrainConfig, out: Path, spec: PolicySpec, policy: Any, tracker: Tracker,
    result: TrainResult,
) -> None:  # fmt: skip
    from models import save_policy
    from pipeline.reports.training_plots import plot_gradient_norms, plot_learning_curves

    save_policy(out / POLICY_DIR, policy, spec, config_to_dict(config), overwrite=True)
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    for name, make in (("learning_curves.png", plot_learning_curves),
                       ("gradient_norms.png", plot_gradient_norms)):  # fmt: skip
        make(result.history, plots / name)
        tracker.log_artifact(plots / name, "plots")
    tracker.log_artifact(out / CONFIG_FILE)
    example = spec.example_inputs()
    result.model_uri = tracker.log_keras_policy(
        policy, example, registered_model_name=config.tracking.registered_model,
        policy_dir=out / POLICY_DIR,
    )  # fmt: skip
    # Lets `pipeline evaluate <out>` link its run to this one and compare its on-policy
    # action error with the validation loss.
    write_json(out / TRAINING_RUN_FILE, {
        "run_id": result.run_id, "tracking_uri": getattr(tracker, "uri", None),
        "experiment": config.tracking.experiment, "model_uri": result.model_uri,
        "best_val_loss": result.best_val_loss, "best_epoch": result.best_epoch,
        "init_from": result.init_from, "selection": _selection_record(config, result),
    })  # fmt: skip
    # best/epoch counts from 1, as the JSON and the table; metric steps count from 0.
    tracker.log_metrics({"best/val_loss": result.best_val_loss,
                         "best/epoch": float(result.best_epoch)}, step=result.epochs)  # fmt: skip
    if result.rollouts:
        chosen = next(r for r in result.rollouts if r["epoch"] == result.selected_epoch - 1)
        tracker.log_metrics({"selection/epoch": float(result.selected_epoch),
                             "selection/survival": chosen["survival"],
                             "selection/normalized_distance": chosen["normalized_distance"],
                             "selection/rank_correlation": result.rank_correlation},
                            step=result.epochs)  # fmt: skip


def _selection_record(config: TrainConfig, result: TrainResult) -> dict[str, Any] | None:
    """How the saved weights were chosen by rollouts, and on which seeds (``pipeline
    evaluate`` warns when its seeds overlap them)."""
    if not result.rollouts:
        return None
    training = config.training
    first = training.rollout_seed
    return {"selected_epoch": result.selected_epoch, "rank_correlation": result.rank_correlation,
            "seeds": [first, first + training.rollout_episodes - 1],
            "rollouts": result.rollouts}  # fmt: skip


def train_from_file(data: Path, config: TrainConfig, out: Path, **options: Any) -> TrainResult:
    """:func:`train` on the demonstration file ``data``, opened (and checked) once here and
    closed after; ``options`` are :func:`train`'s."""
    with open_training_data(data) as ds:
        return train(ds, config, out, **options)
