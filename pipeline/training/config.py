"""Typed training configuration: YAML file + ``key=value`` overrides, validated up front.

Every section is a pydantic model with a docstring per field; unknown keys are errors
naming the key and the closest valid one, and out-of-range values fail before any data
is read or TensorFlow is imported. The resolved config is saved with every model and
logged to MLflow.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import Field, ValidationError, model_validator

from models.config import (
    UNKNOWN_KEY,
    ModelConfig,
    StrictConfig,
    config_inputs,
    format_validation_error,
)
from pipeline.core.errors import PipelineError

Config = TypeVar("Config", bound=StrictConfig)


class AugmentConfig(StrictConfig):
    """Augmentation of training batches (never applied to validation)."""

    obs_noise: float = Field(0.0, ge=0.0)
    """Gaussian noise on observations, in units of each feature's training std."""
    feature_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Probability of dropping each input feature to its training mean."""
    mirror_prob: float = Field(0.0, ge=0.0, le=1.0)
    """Probability of mirroring a sample left/right (with the env's mirror map); state
    observations only (not with a model that sees camera frames)."""
    image_shift: int = Field(0, ge=0)
    """Image models: shift each sample's frames by up to this many pixels along each axis,
    the border repeated into the gap (DrQ's pad-and-crop); 0 = off."""
    image_brightness: float = Field(0.0, ge=0.0, lt=1.0)
    """Image models: scale each sample's pixels by a factor drawn from [1 - b, 1 + b];
    0 = off."""


class DataConfig(StrictConfig):
    """How demonstrations become training batches."""

    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """Fraction of episodes held out for validation (split by episode, never by step)."""
    normalization: Literal["zscore", "minmax"] = "zscore"
    """Observation normalization inside the model; statistics from the training split."""
    obs_scale_floor: float = Field(0.0, ge=0.0)
    """Lower bound on each observation feature's normalization scale (std for zscore,
    range for minmax), in the feature's own units; 0 keeps the measured scales. Features
    that barely vary in the demonstrations would otherwise multiply a small closed-loop
    deviation by up to 1 / std."""
    history: int = Field(1, ge=1)
    """Observations per input window (K); > 1 for temporal models such as cnn1d."""
    batch_size: int = Field(256, ge=1)
    """Samples per batch."""
    shuffle_buffer: int = Field(20_000, ge=1)
    """Size of the shuffle buffer of the streaming input pipeline."""
    cache_mb: float = Field(256.0, ge=0.0)
    """Keep up to this many MB of decompressed HDF5 blocks across epochs (0 = none).
    Decompressing gzip blocks every epoch costs ~10-30% of a small MLP's fit speed; a
    file larger than the cache streams the rest from disk."""
    max_episodes: int | None = Field(None, ge=2)
    """Use only the first N episodes of the file (learning curves); None uses all."""
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    """Training-time augmentation."""


class OptimizerConfig(StrictConfig):
    """Optimizer and gradient clipping."""

    name: Literal["sgd", "adagrad", "rmsprop", "adam", "nadam", "adamw"] = "adam"
    """Update rule."""
    learning_rate: float = Field(1e-3, gt=0.0)
    """Initial learning rate (the schedule scales it)."""
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    """SGD momentum (and RMSprop momentum)."""
    nesterov: bool = False
    """SGD: Nesterov accelerated gradient."""
    beta_1: float = Field(0.9, gt=0.0, lt=1.0)
    """Adam/Nadam/AdamW first-moment decay."""
    beta_2: float = Field(0.999, gt=0.0, lt=1.0)
    """Adam/Nadam/AdamW second-moment decay."""
    rho: float = Field(0.9, gt=0.0, lt=1.0)
    """RMSprop decay of the squared-gradient average."""
    epsilon: float = Field(1e-7, gt=0.0)
    """Numerical stability term of the adaptive methods."""
    weight_decay: float = Field(0.004, ge=0.0)
    """AdamW decoupled weight decay (ignored by the others)."""
    clipnorm: float | None = Field(None, gt=0.0)
    """Clip each gradient tensor to this L2 norm."""
    clipvalue: float | None = Field(None, gt=0.0)
    """Clip each gradient element to [-clipvalue, clipvalue]."""

    @model_validator(mode="after")
    def _nesterov_needs_sgd(self) -> OptimizerConfig:
        if self.nesterov and self.name != "sgd":
            raise ValueError("nesterov applies to sgd only")
        return self


class ScheduleConfig(StrictConfig):
    """Learning-rate schedule over optimizer steps."""

    name: Literal["constant", "inverse_time", "exponential", "piecewise", "cosine"] = "constant"
    """constant; inverse_time (power decay lr / (1 + rate * step / decay_steps));
    exponential (lr * rate ^ (step / decay_steps)); piecewise (values between boundaries);
    cosine (decay to alpha * lr over decay_steps, after warmup_steps of linear warm-up)."""
    decay_steps: int | None = Field(None, ge=1)
    """Optimizer steps over which the decay applies (inverse_time, exponential, cosine).
    None (the default) follows the run's length: training.epochs x batches per epoch, less
    warmup_steps for cosine, so cosine ends at alpha * lr on the last step and exponential
    at decay_rate * lr (early stopping ends sooner, before the full decay). The resolved
    number is logged as the MLflow param ``schedule.resolved_decay_steps``."""
    decay_rate: float = Field(0.5, gt=0.0)
    """Decay rate (inverse_time, exponential)."""
    staircase: bool = False
    """Decay in discrete jumps every decay_steps (inverse_time, exponential)."""
    boundaries: list[int] = Field(default_factory=list)
    """Step boundaries (piecewise)."""
    values: list[float] = Field(default_factory=list)
    """Learning rates, one more than boundaries (piecewise)."""
    warmup_steps: int = Field(0, ge=0)
    """Linear warm-up steps from 0 to the learning rate (cosine)."""
    alpha: float = Field(0.0, ge=0.0, le=1.0)
    """Final learning rate as a fraction of the initial one (cosine)."""

    @model_validator(mode="after")
    def _piecewise_lengths(self) -> ScheduleConfig:
        if self.name == "piecewise":
            if not self.boundaries or len(self.values) != len(self.boundaries) + 1:
                raise ValueError("piecewise needs boundaries and one more value than boundaries")
            if sorted(self.boundaries) != self.boundaries:
                raise ValueError("piecewise boundaries must increase")
        return self


class TrainingConfig(StrictConfig):
    """The training loop."""

    epochs: int = Field(40, ge=1)
    """Maximum number of passes over the training split."""
    early_stopping_patience: int | None = Field(8, ge=1)
    """Stop after this many epochs without validation improvement; None disables it."""
    restore_best: bool = True
    """With early stopping, end with the weights of the best validation epoch."""
    deterministic: bool = False
    """Enable TensorFlow op determinism (same seed -> identical weights on CPU)."""
    mixed_precision: bool = False
    """Compute in float16 where safe (GPU); variables stay float32."""
    strategy: Literal["auto", "none", "mirrored"] = "auto"
    """Distribution: ``auto`` mirrors across GPUs when TensorFlow sees several, ``mirrored``
    forces tf.distribute.MirroredStrategy over all visible devices, ``none`` one device."""
    grad_norm_batches: int = Field(4, ge=1)
    """Validation batches used to measure per-layer gradient norms each epoch."""
    rollout_every: int | None = Field(None, ge=1)
    """Closed-loop checkpoint selection: every this many epochs (and after the last) roll
    the policy out in the simulation, and save the epoch with the best score (survival,
    then expert-normalized distance) instead of the last or lowest-validation-loss one.
    None: no rollouts during training."""
    rollout_episodes: int = Field(10, ge=1)
    """Episodes per closed-loop check (the expert and a random policy run them once)."""
    rollout_seed: int = Field(900_000, ge=0)
    """First seed of the checks' episodes (``rollout_seed + i``): apart from evaluation
    seeds (``pipeline evaluate`` starts at 1000), so evaluation stays held out."""
    rollout_workers: int = Field(2, ge=1)
    """Worker processes running the checks' episodes."""


class TrackingConfig(StrictConfig):
    """MLflow tracking."""

    enabled: bool = True
    """Track the run in MLflow (``--no-track`` turns it off)."""
    experiment: str = "humanoid-imitation"
    """MLflow experiment name."""
    tracking_uri: str | None = None
    """Tracking URI; None: MLFLOW_TRACKING_URI, then sqlite:///mlflow.db."""
    registered_model: str | None = None
    """Register the trained policy in the model registry under this name."""


class InitConfig(StrictConfig):
    """Where the weights start: fresh from the seed, or from a trained policy (warm start,
    fine-tuning, transfer)."""

    from_policy: str | None = None
    """Policy directory, training run directory, ``runs:/...`` or ``models:/...`` URI whose
    weights the new policy starts from; its architecture must equal ``model``'s. None:
    initial weights from the seed."""
    freeze: int = Field(0, ge=0)
    """Keep the first N hidden blocks (a block: layer, normalization, activation, dropout)
    fixed at the source's weights; needs ``from_policy``."""
    keep_normalization: bool = False
    """Keep the source policy's observation and action normalization instead of computing
    it from the new data; needs ``from_policy``."""

    @model_validator(mode="after")
    def _needs_a_source(self) -> InitConfig:
        if self.from_policy is None:
            for name, value in (("freeze", self.freeze),
                                ("keep_normalization", self.keep_normalization)):  # fmt: skip
                if value:
                    raise ValueError(f"init.{name} needs init.from_policy (a policy to start from)")
        return self


class TrainConfig(StrictConfig):
    """Everything ``pipeline train`` needs besides the dataset path."""

    seed: int = 0
    """Seeds the split, the initial weights, shuffling and augmentation."""
    model: ModelConfig = Field(default_factory=lambda: {"name": "mlp"})  # type: ignore[assignment]
    """Policy architecture (``name``: mlp, cnn1d or cnn2d) and its options."""
    data: DataConfig = Field(default_factory=DataConfig)
    """Input pipeline."""
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    """Optimizer."""
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    """Learning-rate schedule."""
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    """Training loop."""
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    """MLflow."""
    init: InitConfig = Field(default_factory=InitConfig)
    """Initial weights: from the seed or from a trained policy."""

    @model_validator(mode="after")
    def _history_fits_model(self) -> TrainConfig:
        if self.model.name == "cnn1d" and self.data.history < 2:
            raise ValueError("model cnn1d needs data.history >= 2 (a window of observations)")
        return self

    @model_validator(mode="after")
    def _augmentation_fits_model(self) -> TrainConfig:
        augment, images = self.data.augment, config_inputs(self.model) != "state"
        if images and augment.mirror_prob > 0:
            raise ValueError(
                f"data.augment.mirror_prob: mirroring is defined for state observations; "
                f"model {self.model.name} sees camera frames"
            )
        if not images and (augment.image_shift > 0 or augment.image_brightness > 0):
            raise ValueError(
                f"data.augment.image_shift/image_brightness: model {self.model.name} sees no "
                "camera frames (use model.name cnn2d)"
            )
        return self


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any, option: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise PipelineError(f"{option}: '{key}' is a value, not a section")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=value`` -> ("a.b", value parsed as a YAML scalar or list)."""
    if "=" not in text or text.startswith("="):
        raise PipelineError(
            f"override '{text}': expected key=value, e.g. optimizer.learning_rate=3e-4"
        )
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise PipelineError(f"override '{text}': value is not valid YAML") from None


def read_yaml_mapping(path: Path, option: str, what: str) -> dict[str, Any]:
    """The YAML mapping in ``path`` ({} for an empty file); one line naming ``option`` and
    the file if it is missing, not YAML (with the line) or not a mapping of ``what``."""
    if not path.is_file():
        raise PipelineError(f"{option} {path}: file not found")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise PipelineError(f"{option} {path}: not valid YAML{line}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise PipelineError(f"{option} {path}: expected a mapping of {what}")
    return loaded or {}


def read_config_tree(path: Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The YAML mapping at ``path`` (optional) with ``key.sub=value`` overrides applied;
    one-line errors naming ``--config`` or the override."""
    tree = read_yaml_mapping(path, "--config", "sections at the top") if path else {}
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(tree, key, value, f"override '{text}'")
    return tree


def validate_config(cls: type[Config], tree: dict[str, Any], path: Path | None,
                    overrides: list[str] | None = None) -> Config:  # fmt: skip
    """``cls`` validated from ``tree``; one line naming the override or file at fault."""
    try:
        return cls.model_validate(tree)
    except ValidationError as exc:
        source = _override_at_fault(exc, overrides or []) or (str(path) if path else "config")
        raise PipelineError(f"{source}: {format_validation_error(exc)}") from None


def load_config(path: Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read ``path`` (YAML, optional), apply overrides, validate; one-line errors."""
    tree = read_config_tree(path, overrides)
    model = tree.get("model")
    if isinstance(model, dict) and "name" not in model:
        model["name"] = "mlp"  # the default architecture, also when only options are given
    return validate_config(TrainConfig, tree, path, overrides)


def _override_at_fault(exc: ValidationError, overrides: list[str]) -> str | None:
    """``override 'k=v'`` when the first problem is in a key an override set, else None:
    a mistyped override must not be reported as if it were in the YAML file."""
    error = exc.errors(include_url=False)[0]
    parts = [str(part) for part in error.get("loc", ())]
    if error.get("type") == UNKNOWN_KEY:
        parts.append(str((error.get("ctx") or {}).get("key", "")))
    dotted = ".".join(parts)
    if not dotted:  # a check across sections (e.g. model vs data.history)
        return None
    for text in reversed(overrides):  # the last override of a key is the one in effect
        key = text.split("=", 1)[0].strip()
        if dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + "."):
            return f"override '{text}'"
    return None


def config_differences(saved: StrictConfig, other: StrictConfig) -> list[tuple[str, Any, Any]]:
    """``(dotted key, saved value, other value)`` for every setting that differs."""

    def walk(a: Any, b: Any, prefix: str) -> list[tuple[str, Any, Any]]:
        if isinstance(a, dict) and isinstance(b, dict):
            return [diff for key in sorted(set(a) | set(b))
                    for diff in walk(a.get(key), b.get(key), f"{prefix}{key}.")]  # fmt: skip
        return [] if a == b else [(prefix.rstrip("."), a, b)]

    return walk(config_to_dict(saved), config_to_dict(other), "")


def config_to_dict(config: StrictConfig) -> dict[str, Any]:
    """Plain, JSON/YAML-ready dict of the resolved config."""
    return config.model_dump(mode="json")


def save_config(config: StrictConfig, path: Path) -> None:
    """Write the resolved config as YAML."""
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def closest_key(key: str, choices: list[str]) -> str | None:
    """The closest of ``choices`` to ``key`` (for hints)."""
    close = difflib.get_close_matches(key, choices, n=1)
    return close[0] if close else None
