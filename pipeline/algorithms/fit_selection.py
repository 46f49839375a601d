"""Several fits of one dataset, the one that walks best kept (DAgger's final choice).

The same labels fitted twice can walk several points apart: refits of a 20,000-label walk
aggregate from scratch, with nothing but the training seed changed, survived 66-77% of
300 held-out starts (docs/benchmarks/walk-dagger.md, "choosing the final fit in closed
loop"), and their
survival on 200 seeds apart ranked them as the held-out seeds did (Spearman 0.85 over 12
candidates). Each candidate (given policies and fits
from scratch with training seeds ``seed, seed + SEED_STRIDE, ...``) is scored by the one
closed-loop judge (:class:`~pipeline.rollout.closed_loop_judge.ClosedLoopJudge`) on selection seeds
that no evaluation uses, and the best (survival, then expert-normalized distance) is kept.
Each finished candidate is handed to ``on_candidate`` at once, so a caller can record it
and a resumed run scores only the ones still missing.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.core.run_files import CHECKPOINT_DIR, POLICY_DIR
from pipeline.rollout.closed_loop_judge import ClosedLoopJudge, score_key
from pipeline.training.config import InitConfig, TrainConfig

SEED_STRIDE = 100
"""Training seeds of the fits: ``seed + SEED_STRIDE * k``, apart from the neighbouring
seeds a user gives other runs."""
FIT_DIR = "final-fit-{k}"
"""Run directory of fit ``k`` (from 1) under the caller's directory."""


@dataclass
class Candidate:
    """A policy and how it walked on the selection seeds."""

    name: str
    policy_dir: str
    training_seed: int | None
    """The seed of a fit made here; None for a policy given to choose from."""
    survival: float
    normalized_distance: float
    distance: float
    """Mean distance in metres."""
    normalized_pose_reward: float = math.nan
    """The second key for a skill that does not travel (the motion envs); NaN otherwise."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        """A candidate saved as JSON, which stored NaN as null."""
        floats = ("survival", "normalized_distance", "distance", "normalized_pose_reward")
        return cls(**{k: math.nan if k in floats and v is None else v for k, v in data.items()})

    def score(self) -> tuple[float, float]:
        """Higher is better: survival, then normalized distance (or pose reward)."""
        return score_key(asdict(self))


@dataclass(frozen=True)
class FitChoice:
    """What to fit and how to judge it."""

    fits: int
    """Fits from scratch to add to the given policies."""
    epochs: int | None
    """Epochs of each fit; None: the training config's."""
    episodes: int
    """Selection episodes per candidate."""
    seed: int
    """First selection seed."""
    workers: int
    """Worker processes for the selection episodes."""


@dataclass
class FinalChoice:
    """The candidates for a final policy, the one published, and how it walked on the
    evaluation seeds (as DAgger's iteration rows do)."""

    candidates: list[Candidate]
    chosen: str
    survival: float
    survival_on_expert_starts: float
    distance: float
    normalized_distance: float
    pose_reward: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinalChoice:
        """A choice saved as JSON (``dagger.json``'s ``final``)."""
        fields = {k: math.nan if v is None else v for k, v in data.items() if k != "candidates"}
        return cls([Candidate.from_dict(c) for c in data["candidates"]], **fields)

    def published(self) -> Candidate:
        """The chosen candidate."""
        return next(c for c in self.candidates if c.name == self.chosen)

    def table(self) -> tuple[list[str], list[list[str]], str]:
        """Columns, a row per candidate (selection scores, the published one marked) and a
        caption with the published policy's evaluation: what the CLI and the report show."""
        columns = ["candidate", "training seed", "selection survival", "norm. distance",
                   "published"]  # fmt: skip
        rows = [[c.name, "-" if c.training_seed is None else str(c.training_seed),
                 _percent(c.survival), _number(c.normalized_distance),
                 "yes" if c.name == self.chosen else ""] for c in self.candidates]  # fmt: skip
        caption = (f"{self.chosen} on the evaluation seeds: survival {_percent(self.survival)}, "
                   f"on the expert's starts {_percent(self.survival_on_expert_starts)}, "
                   f"normalized distance {_number(self.normalized_distance)}")  # fmt: skip
        return columns, rows, caption


def _percent(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100 * value:.1f}%"


def _number(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2f}"


def choose(candidates: list[Candidate]) -> Candidate:
    """The best-scored candidate; the earliest among equals."""
    return max(candidates, key=lambda c: c.score())


def fit_config(train_config: TrainConfig, k: int, epochs: int | None) -> TrainConfig:
    """The config of fit ``k`` (from 1): from scratch, seed ``seed + SEED_STRIDE (k - 1)``."""
    training = train_config.training
    if epochs is not None:
        training = training.model_copy(update={"epochs": epochs})
    return train_config.model_copy(update={
        "seed": train_config.seed + SEED_STRIDE * (k - 1), "init": InitConfig(),
        "training": training,
    })  # fmt: skip


def select_among_fits(
    data: Path, env_id: str, given: dict[str, Path], train_config: TrainConfig,
    choice: FitChoice, out: Path, done: list[Candidate],
    on_candidate: Callable[[Candidate], None], tracking_uri: str | None = None,
) -> Candidate:  # fmt: skip
    """Score the ``given`` policies and ``choice.fits`` fits of ``data`` (each in
    ``out/final-fit-k``) on the selection seeds and return the best. Candidates in ``done``
    (recorded by an earlier, interrupted call) are not scored again; an interrupted fit
    resumes from its checkpoint."""
    scored = {c.name: c for c in done}
    judge: list[ClosedLoopJudge] = []  # made at the first candidate that needs it

    def score(name: str, policy: Path, seed: int | None) -> None:
        if name in scored:
            return
        from models import load_policy

        loaded = load_policy(policy)
        if not judge:
            judge.append(ClosedLoopJudge(env_id, loaded.spec, choice.episodes, choice.seed,
                                         choice.workers))  # fmt: skip
        result: dict[str, Any] = judge[0](loaded.model)
        scored[name] = Candidate(name, str(policy), seed, result["survival"],
                                 result["normalized_distance"], result["distance"],
                                 result.get("normalized_pose_reward", math.nan))  # fmt: skip
        on_candidate(scored[name])

    for name, policy in given.items():
        score(name, policy, None)
    fitted = [FIT_DIR.format(k=k) for k in range(1, choice.fits + 1)]
    for k, name in enumerate(fitted, start=1):
        config = fit_config(train_config, k, choice.epochs)
        run_dir = out / name
        if name not in scored:
            resumable = (run_dir / CHECKPOINT_DIR).is_dir()
            if run_dir.exists() and not resumable:
                shutil.rmtree(run_dir)  # killed before its first checkpoint: nothing to keep
            train_from_file(data, config, run_dir, resume=resumable, tracking_uri=tracking_uri)
        score(name, run_dir / POLICY_DIR, config.seed)
    return choose([scored[name] for name in [*given, *fitted]])
