"""Reward fine-tuning's typed config (``pipeline finetune``), apart from the algorithm so the
command line can validate it without importing TensorFlow."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from models.config import StrictConfig


class PPOConfig(StrictConfig):
    """The PPO update (:mod:`pipeline.algorithms.ppo`)."""

    gamma: float = Field(0.95, gt=0.0, lt=1.0)
    """Discount per control step (DeepMimic's 0.95: a horizon of about 20 steps, 0.7 s of
    the walk)."""
    lam: float = Field(0.95, ge=0.0, le=1.0)
    """GAE's lambda."""
    clip: float = Field(0.2, gt=0.0, lt=1.0)
    """Clip range of the probability ratio."""
    epochs: int = Field(5, ge=1)
    """Passes over each update's data."""
    minibatch: int = Field(1024, ge=16)
    """Steps per gradient step."""
    policy_lr: float = Field(2e-5, gt=0.0)
    """Adam's learning rate for the policy's mean network: small, the policy already walks."""
    log_std_lr: float = Field(1e-3, gt=0.0)
    """Adam's learning rate for the log standard deviation (its own optimizer)."""
    value_lr: float = Field(1e-3, gt=0.0)
    """Adam's learning rate for the critic."""
    max_grad_norm: float = Field(0.5, gt=0.0)
    """Global gradient-norm clip of each network's step."""
    target_kl: float | None = Field(0.02, gt=0.0)
    """Stop an update's epochs once an epoch's mean approximate KL passes this; null: never."""


class ExplorationConfig(StrictConfig):
    """The Gaussian around the policy's action."""

    log_std: float = Field(-3.0, le=1.0)
    """Initial log standard deviation in units of the policy's action std (its training
    data's): -3 is 5% of each dimension's natural spread. The walk's imitation policy
    loses survival fast under noise (measured in docs/benchmarks/finetune.md), so it starts
    small."""
    min_log_std: float = -6.0
    """Lower bound of the learned log standard deviation."""
    max_log_std: float = -1.0
    """Upper bound of the learned log standard deviation."""

    @model_validator(mode="after")
    def _ordered(self) -> ExplorationConfig:
        if not self.min_log_std <= self.log_std <= self.max_log_std:
            raise ValueError("exploration needs min_log_std <= log_std <= max_log_std")
        return self


class CriticConfig(StrictConfig):
    """The value network and its warm-up."""

    hidden_sizes: list[int] = Field(default_factory=lambda: [256, 256], min_length=1)
    """Units of the tanh layers."""
    warmup_updates: int = Field(4, ge=0)
    """Rollout batches of the initial policy the critic alone is fitted on before the
    policy moves."""
    warmup_epochs: int = Field(10, ge=1)
    """Passes over each warm-up batch."""


class AnchorConfig(StrictConfig):
    """The behaviour-cloning loss that keeps the policy near its teacher (DAPG, kickstarting)."""

    source: Literal["expert", "demos", "none"] = "expert"
    """``expert``: the shipped expert's actions on the states the policy visits (each
    update's rollouts); ``demos``: the pairs of a demonstration file (``--anchor-data``);
    ``none``: no anchor."""
    weight: float = Field(1.0, ge=0.0)
    """Initial weight of the anchor loss (the squared error in the policy's z-scored action
    units, summed over the action dimensions and averaged over states) beside the
    surrogate (whose advantages are normalised)."""
    decay: float = Field(0.98, ge=0.0, le=1.0)
    """The weight is multiplied by this after every policy update."""
    min_weight: float = Field(0.0, ge=0.0)
    """The weight never decays below this: a permanent pull towards the teacher's gait
    (0: the anchor fades away)."""


class CurriculumConfig(StrictConfig):
    """How training episodes differ from evaluation's (each draw seeded per episode)."""

    episode_seconds: float | None = Field(6.0, gt=0)
    """Training episodes are cut here and bootstrapped from the critic (null: the env's
    length). The walk's falls come in the first seconds after a random start; short
    episodes put the samples there."""
    push_probability: float = Field(0.0, ge=0.0, le=1.0)
    """Share of training episodes pushed sideways on the torso at a random moment."""
    push_impulse: tuple[float, float] = (0.0, 0.0)
    """Range of a push's impulse, N*s (uniform)."""
    action_noise: float = Field(0.0, ge=0.0)
    """White noise added to executed actions, in units of the policy's action std (not
    learned: robustness training)."""

    @model_validator(mode="after")
    def _range(self) -> CurriculumConfig:
        low, high = self.push_impulse
        if not 0.0 <= low <= high:
            raise ValueError("curriculum.push_impulse needs 0 <= low <= high")
        return self


class SelectionConfig(StrictConfig):
    """Closed-loop evaluation of the deterministic policy (the mean action) while training."""

    every: int = Field(10, ge=1)
    """Evaluate after every this many policy updates (and after the last)."""
    episodes: int = Field(40, ge=1)
    """Episodes per evaluation, on seeds ``seed .. seed + episodes - 1``."""
    seed: int = Field(7000, ge=0, lt=1_000_000_000)
    """First selection seed: kept apart from the evaluation seeds you report (training
    episodes use seeds from 10^9 up)."""
    min_pose_reward: float | None = Field(None, ge=0.0)
    """A fine-tuned candidate whose pose reward on the selection seeds is below this share
    of the expert's is never published, however well it survives (the motion-imitation
    tasks; null: no floor). Survival can be bought by leaving the gait."""


class FinetuneConfig(StrictConfig):
    """Reward fine-tuning of a learned policy: PPO with a demonstration anchor."""

    seed: int = 0
    """Seeds the critic's initial weights, every rollout and every minibatch."""
    steps: int = Field(1_000_000, ge=1)
    """Environment steps in all (the critic's warm-up included); the run stops at the
    first update that reaches them."""
    steps_per_update: int = Field(8192, ge=16)
    """Environment steps gathered per update."""
    segments: int = Field(8, ge=1)
    """Rollout tasks per update (each ``steps_per_update / segments`` steps): the unit the
    workers share, fixed so that the result does not depend on their number."""
    segment_envs: int = Field(1, ge=1)
    """Environments each segment steps in lockstep, with one forward pass of the policy for
    all of them: the policy's cost per step shrinks (docs/benchmarks/finetune.md). Another
    value gives other (equally valid) trajectories; 1 keeps the runs measured before it."""
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    """The update."""
    exploration: ExplorationConfig = Field(default_factory=ExplorationConfig)
    """The policy's spread."""
    critic: CriticConfig = Field(default_factory=CriticConfig)
    """The value network."""
    anchor: AnchorConfig = Field(default_factory=AnchorConfig)
    """The demonstration anchor."""
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    """Training episodes."""
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    """What gets published."""
    from_scratch: bool = False
    """Ablation (what the teacher buys): start from the policy's architecture and
    normalization with freshly initialised weights (its layers' initializers, with the
    seeds they were built with); the anchor still applies unless it is turned off."""

    @model_validator(mode="after")
    def _segments_fit(self) -> FinetuneConfig:
        if self.steps_per_update < self.segments * self.segment_envs:
            raise ValueError("steps_per_update must be at least segments * segment_envs")
        if self.ppo.minibatch > self.steps_per_update:
            raise ValueError("ppo.minibatch must be at most steps_per_update")
        return self


FINETUNE_RECIPES: dict[str, list[str]] = {
    # A floor under the anchor and a pose floor on what is published keep the gait (pose
    # 0.94-1.01 of the expert's against 0.85-0.93 without them); pushes on half the training
    # episodes lift survival (3 seeds: 86.0-89.3% against 83.7-88.0% without) and the
    # expert's starts kept (97.7-99.5%) (docs/benchmarks/finetune.md).
    "sim/HumanoidWalk-v0": [
        "anchor.min_weight=0.4",
        "selection.min_pose_reward=0.95",
        "curriculum.push_probability=0.5",
        "curriculum.push_impulse=[0,20]",
    ],
}
"""Per environment, the overrides of the typed defaults that its measured recipe makes
(docs/benchmarks/finetune.md); an env without an entry runs on the defaults."""


def resolve_finetune_config(
    config_path: Path | None,
    overrides: Sequence[str],
    *,
    env_id: str | None,
    options: Mapping[str, Any] | None = None,
) -> FinetuneConfig:
    """The fine-tuning config: a ``--config`` file or else the env's recipe, then
    ``overrides``, then the command's options that were given (``options``: dotted key ->
    value, None for not given), which win. One line for anything invalid."""
    from pipeline.training.config import read_config_tree, validate_config

    base = [] if config_path is not None else FINETUNE_RECIPES.get(env_id or "", [])
    given = [
        f"{key}={json.dumps(value)}" for key, value in (options or {}).items() if value is not None
    ]
    every = [*base, *overrides, *given]
    return validate_config(FinetuneConfig, read_config_tree(config_path, every), config_path, every)
