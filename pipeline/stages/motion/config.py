"""The typed configuration of ``pipeline motion fit`` (validated before TensorFlow loads)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from models.config import MotionNetConfig, StrictConfig
from pipeline.training.config import TrackingConfig, read_config_tree, validate_config


class MotionFitConfig(StrictConfig):
    """What ``pipeline motion fit`` learns and how: the course lab's recipe by default."""

    skill: str = "walk"
    """Skill whose clip is learned (``walk``, ``backflip``, ``jump``: see ``sim.skills``)."""
    clip: str | None = None
    """A clip file (DeepMimic format, this character) to learn instead of the skill's own;
    the skill still chooses the environment it is played in."""
    net: MotionNetConfig = Field(default_factory=MotionNetConfig)
    """The network: hidden sizes, activation, initializer, regularization."""
    learning_rate: float = Field(1e-3, gt=0.0)
    """Adam's step size (Keras' default, the lab's optimizer)."""
    steps: int = Field(30000, ge=1)
    """Full-batch gradient steps on squared error (the lab's 30,000 epochs of one batch)."""
    samples: int | None = Field(None, ge=2)
    """Training poses: None takes the clip's key frames at their phases (the lab's way:
    the captured samples); N takes N evenly spaced phases of the interpolated clip."""
    eval_points: int = Field(400, ge=10)
    """Evenly spaced phases of the interpolated clip on which the fit is measured (most lie
    between key frames, so this measures the fit between samples too)."""
    seed: int = 0
    """Seeds the initial weights."""
    log_every: int = Field(100, ge=1)
    """Log the loss every this many steps (MLflow metrics and the loss plot)."""
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    """MLflow experiment and run naming."""

    @field_validator("skill")
    @classmethod
    def _known_skill(cls, value: str) -> str:
        from sim.skills import SKILLS

        if value not in SKILLS:
            raise ValueError(f"unknown skill '{value}': choose one of {', '.join(SKILLS)}")
        return value


def load_motion_config(path: Path | None, overrides: list[str] | None = None) -> MotionFitConfig:
    """Read ``path`` (YAML, optional), apply ``key=value`` overrides, validate; one-line errors."""
    return validate_config(MotionFitConfig, read_config_tree(path, overrides), path, overrides)
