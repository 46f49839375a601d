"""What training reads: the checked demonstration file, its digest, the policy spec with the
normalization statistics of the training split, augmentation, and targets in the
normalized units the model is trained in."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from datasets import open_dataset, validate
from datasets.stats import compute_stats
from pipeline.core.errors import PipelineError
from pipeline.training.config import TrainConfig


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


def normalize_targets(dataset: Any, spec: Any) -> Any:
    import tensorflow as tf

    shift, divisor = spec.act_scale()  # exactly what the model's output layer inverts
    mean, scale = tf.constant(shift, tf.float32), tf.constant(divisor, tf.float32)
    return dataset.map(lambda x, y: (x, (y - mean) / scale), num_parallel_calls=tf.data.AUTOTUNE)


def build_spec(config: TrainConfig, path: Path, train_ids: list[int], digest: str) -> Any:
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


def make_augmenter(config: TrainConfig, stats: Any, env_id: str) -> Any:
    from datasets.augment import Augmenter

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
