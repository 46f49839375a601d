"""What an evaluation is asked (:class:`EvaluateRequest`, checked before any work starts)
and what it measured (:class:`EvaluateReport`), the environment it runs in, and the
names of the policies and output files that the run and its outputs share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_dir, check_output_path
from pipeline.rollout.action_noise import check_action_noise
from pipeline.rollout.cluster import LOCAL, Backend
from pipeline.rollout.episodes import EpisodeResult
from pipeline.rollout.filming import Filmed, VideoChoice, choose_video_episode
from pipeline.rollout.options import (
    check_episode_options,
    check_episode_seconds,
    env_kwargs,
    is_motion_env,
    parse_push,
    parse_start_phase,
)
from pipeline.rollout.policy_source import (
    ResolvedPolicy,
    is_mlflow_uri,
    local_policy_env,
)

LEARNER, EXPERT, RANDOM = "learner", "expert", "random"
EVALUATION_FILE = "evaluation.json"


@dataclass(frozen=True)
class EvaluateRequest:
    """Everything ``pipeline evaluate`` was asked to do."""

    policy: str
    """Policy directory, training run directory, ``runs:/...`` or ``models:/...`` URI."""
    env_id: str | None = None
    """Environment; None uses the one the policy was trained on."""
    episodes: int = 40
    """Episodes per policy (40 gives a survival interval of about +-14 points)."""
    seed: int = 1000
    """Episode i is reset with seed + i (held out: demonstrations use seeds from 0)."""
    workers: int = 2
    """Worker processes running whole episodes."""
    backend: Backend = LOCAL
    """Where the workers run: local processes or Ray actors (the episodes are the same)."""
    start_phase: str | None = None
    """Motion envs only: '0', 'random' (None: random) or a phase in [0, 1)."""
    episode_seconds: float | None = None
    """Motion envs only: episode time limit in simulated seconds."""
    compare_expert: bool = False
    """Also run the expert and a random policy on the same seeds."""
    push: str | None = None
    """``IMPULSE[@TIME]``: push every episode sideways on the torso with IMPULSE N*s at
    TIME seconds, or without TIME at a random moment of the gait (the side is random too;
    both drawn from the episode's seed, so every policy gets the same push)."""
    action_noise: float = 0.0
    """Gaussian noise on every executed action of the learner and the expert, in units of
    the expert's action scale (DART's unit), drawn from the episode's seed; 0: none. The
    random baseline acts as it would. The action error then includes the noise."""
    video: Path | None = None
    """Video (.mp4/.gif) of the learner on the first seed the expert (with compare_expert,
    else the learner) survives; with compare_expert also ``<stem>_vs_expert<suffix>``:
    learner (left) and expert (right) on that seed; when the learner fell anywhere also
    ``<stem>_first_fall<suffix>``: the last seconds before its first fall."""
    out: Path | None = None
    """Directory for the report and plots (created; must not hold a report already)."""
    json_path: Path | None = None
    """Report as JSON."""
    overwrite: bool = False
    """Replace existing outputs (videos, JSON, the report in ``out``); refused otherwise."""


@dataclass
class EvaluateReport:
    """What an evaluation measured."""

    policy: str
    env_id: str
    env_kwargs: dict[str, Any]
    seeds: list[int]
    results: dict[str, list[EpisodeResult]]
    """Per policy (learner, expert, random), per episode."""
    summaries: dict[str, dict[str, Any]]
    action_noise: float = 0.0
    """Noise on the learner's and the expert's executed actions (``--action-noise``)."""
    scores: dict[str, Any] = field(default_factory=dict)
    """Expert-normalized scores and survival on expert-surviving starts."""
    shown: VideoChoice | None = None
    """The seed the videos and the trajectory plot show, and why."""
    filmed: list[Filmed] = field(default_factory=list)
    """The videos written, with their seeds and what they show."""
    videos: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    validation_loss: float | None = None
    """The policy's best validation loss (normalized units), from its training run."""
    training_run_id: str | None = None
    eval_run_id: str | None = None
    warnings: list[str] = field(default_factory=list)
    """What makes the numbers less than they seem (seeds the policy was selected on)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluateReport:
        """What :meth:`to_dict` wrote (``evaluation.json``), without videos' frames or
        traced actions: enough to print or report the evaluation again."""
        results = {name: [EpisodeResult.from_dict(e) for e in episodes]
                   for name, episodes in data["episodes"].items()}  # fmt: skip
        shown = VideoChoice(**data["shown"]) if data.get("shown") else None
        filmed = [Filmed(**f) for f in data.get("filmed", [])]
        return cls(policy=data["policy"], env_id=data["env_id"], env_kwargs=data["env_kwargs"],
                   seeds=list(data["seeds"]), results=results, summaries=data["summary"],
                   action_noise=data.get("action_noise", 0.0),
                   scores=data.get("scores") or {}, shown=shown, filmed=filmed,
                   videos=data.get("videos", []),
                   plots=data.get("plots", []), validation_loss=data.get("validation_loss"),
                   training_run_id=data.get("training_run_id"),
                   eval_run_id=data.get("eval_run_id"),
                   warnings=data.get("warnings", []))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "evaluate", "policy": self.policy, "env_id": self.env_id,
            "env_kwargs": self.env_kwargs, "action_noise": self.action_noise,
            "seeds": self.seeds,
            "episodes": {k: [r.to_dict() for r in v] for k, v in self.results.items()},
            "summary": self.summaries, "scores": self.scores, "videos": self.videos,
            "shown": asdict(self.shown) if self.shown else None,
            "filmed": [f.to_dict() for f in self.filmed],
            "plots": self.plots, "validation_loss": self.validation_loss,
            "training_run_id": self.training_run_id,
            "eval_run_id": self.eval_run_id, "warnings": self.warnings,
        }  # fmt: skip


def check_request(request: EvaluateRequest) -> None:
    """Check every option that needs nothing loaded, before any work starts (before
    TensorFlow, the policy or the tracking store)."""
    if not is_mlflow_uri(request.policy) and not Path(request.policy).exists():
        raise PipelineError(f"--policy {request.policy}: policy directory not found")
    check_episode_options(request.episodes, request.workers, request.video, request.json_path,
                          request.overwrite)  # fmt: skip
    check_action_noise(request.action_noise)
    if request.video is not None and request.compare_expert:
        check_output_path(side_by_side_path(request.video), "--video", overwrite=request.overwrite)
    # The env is the policy's unless --env names one; a local policy's spec says which.
    env_id = request.env_id or local_policy_env(request.policy)
    if env_id is not None:
        env_kwargs(env_id, request.start_phase, request.episode_seconds, request.push)
    else:  # an MLflow policy: the walk-only rule is checked once it is downloaded
        if request.push is not None:
            parse_push(request.push)
        if request.start_phase is not None:
            parse_start_phase(request.start_phase)
        if request.episode_seconds is not None:
            check_episode_seconds(request.episode_seconds)
    if request.out is not None:
        check_output_dir(request.out, "--out")
        if (request.out / EVALUATION_FILE).exists() and not request.overwrite:
            raise PipelineError(
                f"--out {request.out}: already holds an evaluation ({EVALUATION_FILE}); not "
                "overwriting it (use --overwrite)"
            )


@dataclass(frozen=True)
class EvalEnv:
    """The environment an evaluation runs in, read once from one instance."""

    env_id: str
    kwargs: dict[str, Any]
    """Constructor arguments (rendering on, walk options)."""
    action_low: np.ndarray
    action_high: np.ndarray
    fps: float
    """Frame rate of its videos."""


def env_for(request: EvaluateRequest, resolved: ResolvedPolicy) -> EvalEnv:
    """The env to evaluate in; refuses a policy whose spec does not fit it."""
    spec = resolved.loaded.spec
    env_id = request.env_id or spec.env_id
    start_phase = request.start_phase
    if start_phase is None and is_motion_env(env_id):
        start_phase = "random"
    kwargs = env_kwargs(env_id, start_phase, request.episode_seconds, request.push)
    env = gym.make(env_id)
    try:
        obs_shape, space = env.observation_space.shape, env.action_space
        fps = float(env.metadata.get("render_fps", 30))
    finally:
        env.close()
    if (spec.obs_dim,) != obs_shape or (spec.act_dim,) != space.shape:
        raise PipelineError(
            f"--policy {request.policy}: trained on {spec.env_id} (observation {spec.obs_dim}, "
            f"action {spec.act_dim}); {env_id} has observation {obs_shape[0]}, "
            f"action {space.shape[0]}"
        )
    return EvalEnv(env_id, kwargs, space.low.astype(float), space.high.astype(float), fps)


def shown_episode(results: dict[str, list[EpisodeResult]]) -> VideoChoice:
    """The seed videos and the trajectory plot show: the first the expert survives when it
    ran, else the first the learner survives."""
    who = EXPERT if EXPERT in results else LEARNER
    return choose_video_episode(results[who], who)


def side_by_side_path(video: Path) -> Path:
    """Where the learner-vs-expert video goes next to ``video``."""
    return video.with_name(f"{video.stem}_vs_expert{video.suffix}")
