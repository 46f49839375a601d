"""``pipeline evaluate``: roll a trained policy out in the simulation and measure it honestly.

The learner runs ``episodes`` episodes from seeds ``seed .. seed+episodes-1``; the env's
expert relabels every state the learner reaches (action error in the policy's normalized
action units, the units of its validation loss, per episode and per simulated second:
compounding error shows as growth). With ``compare_expert`` the expert and a uniform random
policy run the same seeds in the same call, so the report can give

- expert-normalized scores ``(learner - random) / (expert - random)`` for return and
  distance, and
- survival on the start states the expert itself survives: the walk expert falls from about
  a quarter of random start phases, so the plain survival rate alone misleads.

The policy's forward pass is compiled to NumPy (``models.inference``) so rollout workers
never call ``model.predict`` and need no TensorFlow.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import sim
from pipeline.errors import PipelineError
from pipeline.filming import Filmed, VideoChoice, choose_video_episode
from pipeline.intervals import wilson_interval
from pipeline.outputs import check_output_dir, check_output_path, make_parent
from pipeline.policies import ExpertPolicy, ExpertRelabeller, LearnedPolicy, RandomPolicy
from pipeline.policy_source import (
    ResolvedPolicy,
    is_mlflow_uri,
    local_policy_env,
    resolve_policy_source,
)
from pipeline.rollout import EpisodeResult, summarize
from pipeline.rollout_command import (
    WALK_ENV,
    check_episode_options,
    check_episode_seconds,
    env_kwargs,
    parse_start_phase,
)
from pipeline.workers import EpisodeTask, run_episodes

LEARNER, EXPERT, RANDOM = "learner", "expert", "random"
REPORT_FILE = "evaluation.json"


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
    start_phase: str | None = None
    """Walk only: '0', 'random' (None: random) or a phase in [0, 1)."""
    episode_seconds: float | None = None
    """Walk only: episode time limit in simulated seconds."""
    compare_expert: bool = False
    """Also run the expert and a random policy on the same seeds."""
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "evaluate", "policy": self.policy, "env_id": self.env_id,
            "env_kwargs": self.env_kwargs, "seeds": self.seeds,
            "episodes": {k: [r.to_dict() for r in v] for k, v in self.results.items()},
            "summary": self.summaries, "scores": self.scores, "videos": self.videos,
            "shown": asdict(self.shown) if self.shown else None,
            "filmed": [f.to_dict() for f in self.filmed],
            "plots": self.plots, "validation_loss": self.validation_loss,
            "training_run_id": self.training_run_id,
            "eval_run_id": self.eval_run_id,
        }  # fmt: skip


def check_request(request: EvaluateRequest) -> None:
    """Check every option that needs nothing loaded, before any work starts (before
    TensorFlow, the policy or the tracking store)."""
    if not is_mlflow_uri(request.policy) and not Path(request.policy).exists():
        raise PipelineError(f"--policy {request.policy}: policy directory not found")
    check_episode_options(request.episodes, request.workers, request.video, request.json_path,
                          request.overwrite)  # fmt: skip
    if request.video is not None and request.compare_expert:
        check_output_path(side_by_side_path(request.video), "--video", overwrite=request.overwrite)
    # The env is the policy's unless --env names one; a local policy's spec says which.
    env_id = request.env_id or local_policy_env(request.policy)
    if env_id is not None:
        env_kwargs(env_id, request.start_phase, request.episode_seconds)
    else:  # an MLflow policy: the walk-only rule is checked once it is downloaded
        if request.start_phase is not None:
            parse_start_phase(request.start_phase)
        if request.episode_seconds is not None:
            check_episode_seconds(request.episode_seconds)
    if request.out is not None:
        check_output_dir(request.out, "--out")
        if (request.out / REPORT_FILE).exists() and not request.overwrite:
            raise PipelineError(
                f"--out {request.out}: already holds an evaluation ({REPORT_FILE}); not "
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
    if start_phase is None and env_id == WALK_ENV:
        start_phase = "random"
    kwargs = env_kwargs(env_id, start_phase, request.episode_seconds)
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


def learner_policy(resolved: ResolvedPolicy) -> LearnedPolicy:
    """The loaded policy with its compiled forward pass."""
    from models.inference import compile_forward

    loaded = resolved.loaded
    forward = compile_forward(loaded.model)
    return LearnedPolicy(forward, loaded.spec.history, directory=str(loaded.directory))


Progress = Callable[[str, EpisodeResult], None]


def shown_episode(results: dict[str, list[EpisodeResult]]) -> VideoChoice:
    """The seed videos and the trajectory plot show: the first the expert survives when it
    ran, else the first the learner survives."""
    who = EXPERT if EXPERT in results else LEARNER
    return choose_video_episode(results[who], who)


def run_evaluation(
    request: EvaluateRequest,
    resolved: ResolvedPolicy,
    progress: Progress | None = None,
    scratch: Path | None = None,
) -> EvaluateReport:
    """Run the episodes (learner, then expert and random when comparing) and score them."""
    env = env_for(request, resolved)
    env_id, kwargs = env.env_id, env.kwargs
    spec = resolved.loaded.spec
    seeds = [request.seed + i for i in range(request.episodes)]
    expert_name = sim.EXPERT_FOR_ENV.get(env_id)
    if request.compare_expert and expert_name is None:
        raise PipelineError(f"--compare-expert: {env_id} has no shipped expert")
    make_parent(request.video, "--video")  # every input is checked by now
    expert = sim.load_expert(expert_name) if expert_name else None
    relabel = ExpertRelabeller(expert, spec.act_scale()[1].astype(np.float64)) if expert else None

    def run(name: str, policy: Any, relabeller: Any = None) -> list:
        on_result = (lambda r: progress(name, r)) if progress else None
        # Learner and expert keep their actions: the trajectory plot shows the seed chosen
        # only once every episode has run.
        tasks = [EpisodeTask(seed, trace=name != RANDOM) for seed in seeds]
        return run_episodes(env_id, kwargs, policy, tasks, request.workers, on_result,
                            relabeller)  # fmt: skip

    policies: dict[str, Any] = {LEARNER: learner_policy(resolved)}
    results = {LEARNER: run(LEARNER, policies[LEARNER], relabel)}
    if request.compare_expert:
        assert expert is not None
        policies[EXPERT] = ExpertPolicy(expert)
        results[EXPERT] = run(EXPERT, policies[EXPERT])
        results[RANDOM] = run(RANDOM, RandomPolicy(env.action_low, env.action_high))
    report = EvaluateReport(
        policy=request.policy, env_id=env_id,
        env_kwargs={k: v for k, v in kwargs.items() if k != "render_mode"}, seeds=seeds,
        results=results, summaries={k: summarize(v) for k, v in results.items()},
        training_run_id=resolved.training_run_id,
        validation_loss=_validation_loss(resolved),
    )  # fmt: skip
    if request.compare_expert:
        report.scores = expert_normalized_scores(results)
    report.shown = shown_episode(results)
    if request.video is not None:
        from pipeline.evaluate_outputs import make_videos

        assert scratch is not None, "side-by-side videos need a scratch directory"
        report.filmed = make_videos(report, request.video, policies, env, scratch)
        report.videos = [f.path for f in report.filmed]
    return report


def _validation_loss(resolved: ResolvedPolicy) -> float | None:
    value = resolved.training.get("best_val_loss")
    return float(value) if isinstance(value, int | float) else None


def side_by_side_path(video: Path) -> Path:
    """Where the learner-vs-expert video goes next to ``video``."""
    return video.with_name(f"{video.stem}_vs_expert{video.suffix}")


def _mean(summary: dict[str, Any], key: str) -> float:
    value = summary.get(key)
    return float(value["mean"]) if isinstance(value, dict) else math.nan


def normalized(learner: float, expert: float, random: float) -> float:
    """``(learner - random) / (expert - random)``: 0 is random, 1 is the expert."""
    span = expert - random
    return (learner - random) / span if abs(span) > 1e-12 else math.nan


def expert_normalized_scores(results: dict[str, list[EpisodeResult]]) -> dict[str, Any]:
    """Expert-normalized return and distance; survival on the expert's surviving starts."""
    summaries = {k: summarize(v) for k, v in results.items()}
    scores: dict[str, Any] = {}
    for key in ("return", "distance"):
        values = [_mean(summaries[name], key) for name in (LEARNER, EXPERT, RANDOM)]
        scores[f"normalized_{key}"] = normalized(*values)
    expert_survived = {r.seed for r in results[EXPERT] if not r.fell}
    on_those = [r for r in results[LEARNER] if r.seed in expert_survived]
    survived = sum(not r.fell for r in on_those)
    scores["expert_surviving_starts"] = len(on_those)
    scores["survival_on_expert_surviving_starts"] = (
        survived / len(on_those) if on_those else math.nan
    )
    scores["survival_on_expert_surviving_starts_ci95"] = wilson_interval(survived, len(on_those))
    return scores


def evaluate(
    request: EvaluateRequest,
    tracking_uri: str | None,
    progress: Progress | None = None,
    lookup_uri: str | None = None,
) -> EvaluateReport:
    """The whole stage: resolve the policy, run, write plots/report, log to MLflow.

    ``tracking_uri`` None evaluates without tracking; an MLflow policy URI is then looked
    up in ``lookup_uri`` (default: MLFLOW_TRACKING_URI or the local SQLite store).
    """
    from pipeline.evaluate_outputs import log_evaluation, make_plots, write_report

    check_request(request)
    resolved = resolve_policy_source(
        request.policy, tracking_uri or _lookup_uri(request, lookup_uri)
    )
    scratch = Path(tempfile.mkdtemp(prefix="evaluate-"))
    try:
        report = run_evaluation(request, resolved, progress, scratch)
        out = request.out or scratch / "report"
        plots = make_plots(report, out)
        if tracking_uri is not None:
            log_evaluation(report, resolved, request, tracking_uri, plots)
        if request.out is None:
            report.plots = []  # they lived in the scratch directory (and MLflow)
        write_report(report, request.out or out, request.json_path)
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if resolved.download_dir is not None:
            shutil.rmtree(resolved.download_dir, ignore_errors=True)


def _lookup_uri(request: EvaluateRequest, cli_uri: str | None) -> str | None:
    """Even without tracking, an MLflow policy URI must be resolved somewhere."""
    from pipeline.policy_source import is_mlflow_uri
    from pipeline.tracking import resolve_tracking_uri

    return resolve_tracking_uri(cli_uri) if is_mlflow_uri(request.policy) else None
