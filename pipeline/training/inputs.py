"""What training reads: the checked demonstration file, its digest, and the
:class:`TrainingInputs` built from it once: the episode split, the policy spec with the
normalization statistics of the training split, the batch counts, augmentation, and the
batches in the normalized action units the model is trained in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets import Dataset, open_dataset, validate
from datasets.training.splits import split_episodes
from datasets.training.stats import NormalizationStats, compute_stats
from pipeline.core.errors import PipelineError
from pipeline.training.config import TrainConfig

if TYPE_CHECKING:
    from models.spec import PolicySpec


def dataset_digest(ds: Dataset) -> str:
    """Content digest from the per-episode checksums (no array is read)."""
    h = hashlib.sha256()
    h.update(ds.metadata.dataset_uuid.encode())
    for info in ds.episode_infos():
        h.update(info.checksum.encode())
    return "sha256:" + h.hexdigest()


def open_training_data(path: Path) -> Dataset:
    """Open ``path`` once for a training command and check it: ours, structurally sound,
    at least two episodes, the spaces of its environment. The caller closes it (it is a
    context manager); one line naming ``--data`` for anything wrong."""
    if not path.exists():
        raise PipelineError(f"--data {path}: file not found")
    ds = open_dataset(path)
    try:
        validate(ds)
        if len(ds) < 2:
            raise PipelineError(f"--data {path}: {len(ds)} episode(s); training needs at least 2")
        _check_spaces(ds)
    except BaseException:
        ds.close()
        raise
    return ds


def _check_spaces(ds: Dataset) -> None:
    import gymnasium as gym

    import sim

    meta = ds.metadata
    if meta.env_id in sim.ENV_IDS:
        env = gym.make(meta.env_id)
        try:
            shape = tuple(env.observation_space.shape)
            act = tuple(env.action_space.shape)
        finally:
            env.close()
        if tuple(meta.observation_space.shape) != shape or tuple(meta.action_space.shape) != act:
            raise PipelineError(
                f"--data {ds.path}: observation/action shapes {meta.observation_space.shape}/"
                f"{meta.action_space.shape} do not match {meta.env_id} ({shape}/{act})"
            )


def normalize_targets(dataset: Any, spec: PolicySpec) -> Any:
    """``(obs, actions)`` batches as ``(obs, normalized actions)``: the training targets."""
    import tensorflow as tf

    shift, divisor = spec.act_scale()  # exactly what the model's output layer inverts
    mean, scale = tf.constant(shift, tf.float32), tf.constant(divisor, tf.float32)
    return dataset.map(lambda x, y: (x, (y - mean) / scale), num_parallel_calls=tf.data.AUTOTUNE)


def build_spec(
    config: TrainConfig, ds: Dataset, train_ids: list[int], digest: str
) -> tuple[PolicySpec, NormalizationStats]:
    """The policy spec with the normalization of the training episodes, and their stats."""
    from models.config import config_inputs
    from models.spec import PolicySpec

    inputs = config_inputs(config.model)
    camera = ds.metadata.camera if inputs != "state" else None
    if inputs != "state" and camera is None:
        raise PipelineError(
            f"--data {ds.path}: model {config.model.name} sees camera frames and the file has "
            "none (record with --camera WxH)"
        )
    stats = compute_stats(ds, train_ids)
    act_mean, act_var = stats.actions.normalization("zscore")
    obs_center, obs_var = stats.observations.normalization(
        config.data.normalization, scale_floor=config.data.obs_scale_floor
    )
    return PolicySpec(
        env_id=ds.metadata.env_id,
        obs_dim=int(stats.observations.shape[-1]),
        act_dim=int(stats.actions.shape[-1]),
        history=config.data.history,
        obs_norm=config.data.normalization,
        obs_mean=obs_center,
        obs_variance=obs_var,
        act_mean=act_mean,
        act_variance=act_var,
        stats_source=str(ds.path),
        stats_digest=digest,
        inputs=inputs,
        camera=camera,
    ), stats


def mirror_map(config: TrainConfig, env_id: str) -> Any:
    """The env's mirror map when the config mirrors samples, else None; one line naming
    ``data.augment.mirror_prob`` for an env that has none (checked before any output)."""
    if config.data.augment.mirror_prob <= 0:
        return None
    from sim.mirror import mirror_spec

    try:
        return mirror_spec(env_id)
    except ValueError as exc:
        raise PipelineError(f"data.augment.mirror_prob: {exc}") from None


def make_augmenter(config: TrainConfig, stats: NormalizationStats, env_id: str) -> Any:
    """The configured augmentation of training observations, or None when it does nothing."""
    from datasets.training.augment import Augmenter

    aug = config.data.augment
    mirror = mirror_map(config, env_id)
    augmenter = Augmenter.from_stats(
        stats.observations,
        noise_std=aug.obs_noise,
        feature_dropout=aug.feature_dropout,
        mirror=mirror,
        mirror_prob=aug.mirror_prob if mirror is not None else 0.5,
    )
    return augmenter if augmenter.active else None


def make_image_augmenter(config: TrainConfig) -> Any:
    """The configured augmentation of training frames, or None when it does nothing."""
    from datasets.training.augment import ImageAugmenter

    aug = config.data.augment
    augmenter = ImageAugmenter(shift=aug.image_shift, brightness=aug.image_brightness)
    return augmenter if augmenter.active else None


@dataclass
class TrainingInputs:
    """One open demonstration file prepared for a fit: which episodes train and which
    validate, the spec and statistics of the training split, and batch counts. Batches
    stream from the same open file (:meth:`train_batches`, :meth:`val_batches`)."""

    ds: Dataset
    """The open file (the caller closes it after training)."""
    config: TrainConfig
    env_id: str
    episode_ids: list[int]
    """Every episode used (after ``data.max_episodes``)."""
    train_ids: list[int]
    val_ids: list[int]
    spec: PolicySpec
    stats: NormalizationStats
    steps_per_epoch: int
    """Training batches per epoch."""
    train_samples: int
    """Training samples (steps of the training episodes)."""
    total_steps: int
    """Steps of all episodes used."""

    @classmethod
    def prepare(cls, ds: Dataset, config: TrainConfig, digest: str) -> TrainingInputs:
        """Split ``ds`` by episode with the config's seed and compute what training needs."""
        from datasets.training.epochs import batches_per_epoch, count_steps

        ids = ds.episode_ids()
        if config.data.max_episodes is not None:
            ids = ids[: config.data.max_episodes]
        try:
            train_ids, val_ids = split_episodes(ids, config.data.val_fraction, config.seed)
        except ValueError as exc:
            raise PipelineError(f"--data {ds.path}: {exc}") from None
        spec, stats = build_spec(config, ds, train_ids, digest)
        return cls(
            ds=ds, config=config, env_id=ds.metadata.env_id, episode_ids=ids,
            train_ids=train_ids, val_ids=val_ids, spec=spec, stats=stats,
            steps_per_epoch=batches_per_epoch(ds, train_ids, config.data.batch_size),
            train_samples=count_steps(ds, train_ids), total_steps=count_steps(ds, ids),
        )  # fmt: skip

    def train_batches(self, first_epoch: int = 0) -> Any:
        """Shuffled, augmented training batches, starting at epoch ``first_epoch`` (so a
        resumed fit sees what an uninterrupted one would have)."""
        from datasets.training.tfdata import make_tf_dataset

        dcfg = self.config.data
        return normalize_targets(make_tf_dataset(
            self.ds, self.train_ids, batch_size=dcfg.batch_size,
            shuffle_buffer=dcfg.shuffle_buffer, seed=self.config.seed, history=dcfg.history,
            augmenter=make_augmenter(self.config, self.stats, self.env_id), training=True,
            epoch=first_epoch, cache_mb=dcfg.cache_mb, inputs=self.spec.inputs,
            image_augmenter=make_image_augmenter(self.config)), self.spec)  # fmt: skip

    def val_batches(self) -> Any:
        """Validation batches in a fixed order, without augmentation."""
        from datasets.training.tfdata import make_tf_dataset

        dcfg = self.config.data
        return normalize_targets(make_tf_dataset(
            self.ds, self.val_ids, batch_size=dcfg.batch_size, history=dcfg.history,
            training=False, cache_mb=dcfg.cache_mb, inputs=self.spec.inputs),
            self.spec)  # fmt: skip
