"""The training stage: demonstrations -> a Keras policy that reloads alone.

Steps: validate the dataset; split it by episode; compute normalization statistics on
the training split in one streaming pass; build the policy with normalization inside;
stream batches from the HDF5 file; fit with checkpoints every epoch (resumable), early
stopping, per-layer gradient norms; save the policy with its spec and resolved config;
track everything in MLflow.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datasets import open_dataset, validate
from datasets.training.splits import split_episodes
from datasets.training.stats import compute_stats
from pipeline.config import TrainConfig, config_to_dict, save_config
from pipeline.errors import PipelineError
from pipeline.outputs import check_output_dir, write_json
from pipeline.tracking import run_name
from pipeline.train_resume import (
    CONFIG_FILE,
    check_resume_config,
    check_resume_record,
    read_run_start,
    write_run_start,
)

CHECKPOINT_DIR = "checkpoint"
POLICY_DIR = "policy"
TRAINING_RUN_FILE = "training_run.json"


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


def dataset_digest(path: Path) -> str:
    """Content digest from the per-episode checksums (no array is read)."""
    h = hashlib.sha256()
    with open_dataset(path) as ds:
        h.update(ds.metadata.dataset_uuid.encode())
        for info in ds.episode_infos():
            h.update(info.checksum.encode())
    return "sha256:" + h.hexdigest()


def check_dataset(path: Path) -> None:
    """The dataset exists, is ours, and its spaces match its environment's."""
    if not path.exists():
        raise PipelineError(f"--data {path}: file not found")
    validate(path)
    with open_dataset(path) as ds:
        meta = ds.metadata
        if len(ds) < 2:
            raise PipelineError(f"--data {path}: {len(ds)} episode(s); training needs at least 2")
    import gymnasium as gym

    import sim

    if meta.env_id in sim.ENV_IDS:
        env = gym.make(meta.env_id)
        try:
            shape = tuple(env.observation_space.shape)
            act = tuple(env.action_space.shape)
        finally:
            env.close()
        if tuple(meta.observation_space.shape) != shape or tuple(meta.action_space.shape) != act:
            raise PipelineError(
                f"--data {path}: observation/action shapes {meta.observation_space.shape}/"
                f"{meta.action_space.shape} do not match {meta.env_id} ({shape}/{act})"
            )


def configure_tensorflow(config: TrainConfig) -> str:
    """Seeds, determinism, precision; returns a device description."""
    from pipeline.tensorflow_setup import gpu_names

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


def _normalize_targets(dataset: Any, spec: Any) -> Any:
    import tensorflow as tf

    shift, divisor = spec.act_scale()  # exactly what the model's output layer inverts
    mean, scale = tf.constant(shift, tf.float32), tf.constant(divisor, tf.float32)
    return dataset.map(lambda x, y: (x, (y - mean) / scale), num_parallel_calls=tf.data.AUTOTUNE)


def _build_spec(config: TrainConfig, path: Path, train_ids: list[int], digest: str) -> Any:
    from models.spec import PolicySpec

    with open_dataset(path) as ds:
        env_id = ds.metadata.env_id
    stats = compute_stats(path, train_ids)
    act_mean, act_var = stats.actions.normalization("zscore")
    obs_center, obs_var = stats.observations.normalization(
        config.data.normalization, scale_floor=config.data.obs_scale_floor
    )
    return PolicySpec(
        env_id=env_id,
        obs_dim=int(stats.observations.shape[-1]),
        act_dim=int(stats.actions.shape[-1]),
        history=config.data.history,
        obs_norm=config.data.normalization,
        obs_mean=obs_center,
        obs_variance=obs_var,
        act_mean=act_mean,
        act_variance=act_var,
        stats_source=str(path),
        stats_digest=digest,
    ), stats


def _augmenter(config: TrainConfig, stats: Any, env_id: str) -> Any:
    from datasets.training.augment import Augmenter

    aug = config.data.augment
    mirror = None
    if aug.mirror_prob > 0:
        from sim.mirror import mirror_spec

        try:
            mirror = mirror_spec(env_id)
        except ValueError as exc:
            raise PipelineError(f"data.augment.mirror_prob: {exc}") from None
    augmenter = Augmenter.from_stats(
        stats.observations,
        noise_std=aug.obs_noise,
        feature_dropout=aug.feature_dropout,
        mirror=mirror,
        mirror_prob=aug.mirror_prob if mirror is not None else 0.5,
    )
    return augmenter if augmenter.active else None


def _baseline_losses(train_model: Any, loss_fn: Any, val_data: Any) -> tuple[float, float]:
    """Validation loss of the untrained model and of predicting the mean action (0 in
    normalized units; with a Gaussian head, spread 1): the first sanity check of any fit."""
    import tensorflow as tf

    init, mean, n = 0.0, 0.0, 0
    for x, y in val_data:
        pred = train_model(x, training=False)
        init += float(loss_fn(y, pred)) * len(y)
        mean += float(loss_fn(y, tf.zeros_like(pred))) * len(y)
        n += len(y)
    return init / max(n, 1), mean / max(n, 1)


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
    data: Path,
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    tracking_uri: str | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train a policy on ``data`` into ``out``; see the module docstring.

    ``tracking_uri`` None trains without tracking (resolve and check it first with
    :func:`pipeline.tracking.prepare`). With ``resume``, ``config`` must equal the run's
    ``config.yaml``, and nothing in ``out`` or in MLflow changes before the checkpoint has
    loaded; the MLflow run recorded in ``run_start.json`` is continued.
    """
    from pipeline.tracking import open_tracker, portable_uri
    from pipeline.train_callbacks import TrainState

    start = time.perf_counter()
    check_dataset(data)
    prepare_out_dir(out, resume)
    uri = portable_uri(tracking_uri) if tracking_uri is not None else None
    record: dict[str, Any] = {}
    if resume:
        check_resume_config(out, config)
        record = read_run_start(out)
    digest = dataset_digest(data)
    if resume:
        check_resume_record(out, record, data, digest, uri)
    device = configure_tensorflow(config)
    with open_dataset(data) as ds:
        ids = ds.episode_ids()
        env_id = ds.metadata.env_id
    if config.data.max_episodes is not None:
        ids = ids[: config.data.max_episodes]
    try:
        train_ids, val_ids = split_episodes(ids, config.data.val_fraction, config.seed)
    except ValueError as exc:
        raise PipelineError(f"--data {data}: {exc}") from None
    spec, stats = _build_spec(config, data, train_ids, digest)
    steps_per_epoch = _batches_per_epoch(data, train_ids, config.data.batch_size)
    built = _build_model(config, spec, config.training.epochs * steps_per_epoch)
    state = _restore(out, built.train_model) if resume else TrainState()
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / CONFIG_FILE)
    result = TrainResult(out_dir=str(out), policy_dir=str(out / POLICY_DIR), device=device,
                         train_episodes=len(train_ids), val_episodes=len(val_ids),
                         resumed_from_epoch=state.epochs_done)  # fmt: skip
    tags = {"stage": "train", "env_id": env_id, "device": device, "model": config.model.name}
    name = run_name("train", env_id, config.model.name, f"seed{config.seed}")
    with open_tracker(uri, config.tracking.experiment, name, tags=tags,
                      resume_run_id=record.get("run_id") if uri else None) as tracker:  # fmt: skip
        result.run_id = tracker.run_id
        if tracker.run_id is None or tracker.run_id != record.get("run_id"):
            # A new run: record it at once, so that a resume after a kill continues it.
            write_run_start(out, tracker.run_id, uri, config.tracking.experiment, digest)
            _log_run_inputs(tracker, config, data, digest, ids, spec, steps_per_epoch)
        _fit(config, data, spec, stats, env_id, train_ids, val_ids, steps_per_epoch,
             Fitting(built, out / CHECKPOINT_DIR, state), tracker, result, on_epoch)  # fmt: skip
        _save_outputs(config, out, spec, tracker, result)
    result.wall_s = time.perf_counter() - start
    return result


def _batches_per_epoch(path: Path, ids: list[int], batch_size: int) -> int:
    from datasets.training.epochs import batches_per_epoch

    return batches_per_epoch(path, ids, batch_size)


def _log_run_inputs(
    tracker: Any, config: TrainConfig, data: Path, digest: str, ids: list[int], spec: Any,
    steps_per_epoch: int,
) -> None:  # fmt: skip
    from pipeline.optim import resolve_decay_steps

    tracker.log_params(config_to_dict(config))
    if config.schedule.name in ("inverse_time", "exponential", "cosine"):
        total = config.training.epochs * steps_per_epoch
        tracker.log_params({"schedule.resolved_decay_steps":
                            resolve_decay_steps(config.schedule, total)})  # fmt: skip
    tracker.log_dataset_info(data, digest, len(ids), _count_steps(data, ids))
    tracker.log_dict(config_to_dict(config), "config.json")
    tracker.log_dict(spec.to_dict(), "spec.json")


def _count_steps(path: Path, ids: list[int]) -> int:
    from datasets.training.epochs import count_steps

    return count_steps(path, ids)


def _build_model(config: TrainConfig, spec: Any, total_steps: int) -> Any:
    """The policy (``BuiltPolicy``), its training model compiled with the optimizer."""
    from models import build_policy
    from pipeline.optim import build_optimizer

    with distribution_scope(config):
        built = build_policy(config.model, spec, seed=config.seed)
        built.train_model.compile(
            optimizer=build_optimizer(config.optimizer, config.schedule, total_steps),
            loss=built.loss,
            metrics=built.metrics,
        )
    return built


def _restore(out: Path, model: Any) -> Any:
    """Load the checkpoint of ``out`` into ``model`` and return its ``TrainState``; one
    line if it does not fit."""
    from pipeline.train_callbacks import load_checkpoint

    try:
        return load_checkpoint(out / CHECKPOINT_DIR, model)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"--resume {out}: checkpoint unusable ({exc})") from None


@dataclass
class Fitting:
    """The model being trained, its checkpoint directory and the progress so far."""

    built: Any
    """``BuiltPolicy``: the policy and its training model."""
    checkpoint: Path
    """Where checkpoints go."""
    state: Any
    """``TrainState``: progress so far (restored on resume)."""


def _fit(
    config: TrainConfig,
    data: Path,
    spec: Any,
    stats: Any,
    env_id: str,
    train_ids: list[int],
    val_ids: list[int],
    steps_per_epoch: int,
    fitting: Fitting,
    tracker: Any,
    result: TrainResult,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> None:
    from datasets.training.epochs import count_steps
    from datasets.training.tfdata import make_tf_dataset
    from pipeline.train_callbacks import (
        BEST_FILE,
        CheckpointAndEarlyStopping,
        EpochReporter,
        GradientNorms,
    )

    built, ckpt, state = fitting.built, fitting.checkpoint, fitting.state
    model = built.train_model
    dcfg = config.data
    train_data = _normalize_targets(make_tf_dataset(
        data, train_ids, batch_size=dcfg.batch_size, shuffle_buffer=dcfg.shuffle_buffer,
        seed=config.seed, history=dcfg.history, augmenter=_augmenter(config, stats, env_id),
        training=True, epoch=state.epochs_done, cache_mb=dcfg.cache_mb), spec)  # fmt: skip
    val_data = _normalize_targets(make_tf_dataset(
        data, val_ids, batch_size=dcfg.batch_size, history=dcfg.history, training=False,
        cache_mb=dcfg.cache_mb), spec)  # fmt: skip
    result.train_samples = count_steps(data, train_ids)
    if result.resumed_from_epoch == 0:
        # The untrained model's losses; a resumed run reads them from its checkpoint.
        init_loss, mean_loss = _baseline_losses(model, built.loss, val_data)
        state.initial_val_loss, state.mean_action_val_loss = init_loss, mean_loss
        tracker.log_metrics({"sanity/initial_val_loss": init_loss,
                             "sanity/mean_action_val_loss": mean_loss}, step=0)  # fmt: skip
    result.initial_val_loss = state.initial_val_loss
    result.mean_action_val_loss = state.mean_action_val_loss
    grad_batches = [(x, y) for x, y in val_data.take(config.training.grad_norm_batches)]
    callbacks = [
        GradientNorms(grad_batches, built.loss),
        EpochReporter(tracker, result.train_samples, on_epoch),
        CheckpointAndEarlyStopping(ckpt, state, config.training.early_stopping_patience),
    ]
    if state.epochs_done < config.training.epochs and not state.stopped_early:
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.training.epochs,
            initial_epoch=state.epochs_done,
            shuffle=False,  # the input pipeline shuffles; Keras would warn and ignore it
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=0,
        )
    if state.diverged_epoch is not None:
        raise PipelineError(
            f"training diverged: the loss became NaN/Inf in epoch {state.diverged_epoch + 1}; "
            f"the last good checkpoint is kept in {ckpt} (lower optimizer.learning_rate or set "
            "optimizer.clipnorm)"
        )
    if config.training.restore_best and (ckpt / BEST_FILE).exists():
        model.load_weights(ckpt / BEST_FILE)
    result.epochs = state.epochs_done
    result.best_epoch = state.best_epoch + 1  # users count epochs from 1
    result.best_val_loss = state.best_val_loss
    result.stopped_early = state.stopped_early
    result.history = state.history
    losses = state.history.get("loss") or [math.nan]
    result.final_train_loss = losses[-1]
    rates = state.history.get("samples_per_s") or [math.nan]
    result.samples_per_s = float(np.mean(rates))
    result._policy = built.policy  # type: ignore[attr-defined]


def _save_outputs(
    config: TrainConfig, out: Path, spec: Any, tracker: Any, result: TrainResult
) -> None:
    from models import save_policy
    from pipeline.plots import plot_gradient_norms, plot_learning_curves

    policy = result.__dict__.pop("_policy")
    save_policy(out / POLICY_DIR, policy, spec, config_to_dict(config), overwrite=True)
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    for name, make in (("learning_curves.png", plot_learning_curves),
                       ("gradient_norms.png", plot_gradient_norms)):  # fmt: skip
        make(result.history, plots / name)
        tracker.log_artifact(plots / name, "plots")
    tracker.log_artifact(out / CONFIG_FILE)
    example = np.zeros((1, *spec.obs_shape), dtype=np.float32)
    example[:] = np.asarray(spec.obs_mean, dtype=np.float32).reshape(spec.obs_shape[-1:])
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
    })  # fmt: skip
    # best/epoch counts from 1, as the JSON and the table; metric steps count from 0.
    tracker.log_metrics({"best/val_loss": result.best_val_loss,
                         "best/epoch": float(result.best_epoch)}, step=result.epochs)  # fmt: skip
