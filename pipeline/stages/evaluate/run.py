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

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import sim
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import make_parent
from pipeline.rollout.action_noise import ActionNoise, NoisyPolicy
from pipeline.rollout.episodes import EpisodeResult, summarize
from pipeline.rollout.policies import ExpertPolicy, ExpertRelabeller, LearnedPolicy, RandomPolicy
from pipeline.rollout.policy_source import (
    ResolvedPolicy,
    is_mlflow_uri,
    resolve_policy_source,
)
from pipeline.rollout.scores import normalized_scores
from pipeline.rollout.workers import EpisodeTask, run_episodes
from pipeline.stages.evaluate.request import (
    EXPERT,
    LEARNER,
    RANDOM,
    EvaluateReport,
    EvaluateRequest,
    check_request,
    env_for,
    shown_episode,
)


def learner_policy(resolved: ResolvedPolicy) -> LearnedPolicy:
    """The loaded policy with its compiled forward pass."""
    return LearnedPolicy.from_loaded(resolved.loaded)


Progress = Callable[[str, EpisodeResult], None]


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
    if request.action_noise > 0 and expert_name is None:
        raise PipelineError(
            f"--action-noise: {env_id} has no shipped expert whose action scale sets the unit"
        )
    make_parent(request.video, "--video")  # every input is checked by now
    expert = sim.load_expert(expert_name) if expert_name else None
    relabel = ExpertRelabeller(expert, spec.act_scale()[1].astype(np.float64)) if expert else None
    noise = (ActionNoise(request.action_noise, expert.action_scale)
             if expert and request.action_noise > 0 else None)  # fmt: skip

    def perturbed(policy: Any) -> Any:
        return policy if noise is None else NoisyPolicy(policy, noise)

    def run(name: str, policy: Any, relabeller: Any = None) -> list:
        on_result = (lambda r: progress(name, r)) if progress else None
        # Learner and expert keep their actions: the trajectory plot shows the seed chosen
        # only once every episode has run.
        tasks = [EpisodeTask(seed, trace=name != RANDOM) for seed in seeds]
        return run_episodes(env_id, kwargs, policy, tasks, request.workers, on_result,
                            relabeller, request.backend)  # fmt: skip

    policies: dict[str, Any] = {LEARNER: perturbed(learner_policy(resolved))}
    results = {LEARNER: run(LEARNER, policies[LEARNER], relabel)}
    if request.compare_expert:
        assert expert is not None
        policies[EXPERT] = perturbed(ExpertPolicy(expert))
        results[EXPERT] = run(EXPERT, policies[EXPERT])
        results[RANDOM] = run(RANDOM, RandomPolicy(env.action_low, env.action_high))
    report = EvaluateReport(
        policy=request.policy, env_id=env_id,
        env_kwargs={k: v for k, v in kwargs.items() if k != "render_mode"}, seeds=seeds,
        results=results, summaries={k: summarize(v) for k, v in results.items()},
        action_noise=request.action_noise,
        training_run_id=resolved.training_run_id,
        validation_loss=_validation_loss(resolved),
    )  # fmt: skip
    if request.compare_expert:
        report.scores = expert_normalized_scores(results)
    report.warnings = selection_overlap(seeds, resolved.training.get("selection"))
    report.shown = shown_episode(results)
    if request.video is not None:
        from pipeline.stages.evaluate.outputs import make_videos

        assert scratch is not None, "side-by-side videos need a scratch directory"
        report.filmed = make_videos(report, request.video, policies, env, scratch)
        report.videos = [f.path for f in report.filmed]
    return report


def selection_overlap(seeds: list[int], selection: Any) -> list[str]:
    """A warning when evaluation seeds are among those closed-loop selection chose the
    policy on (``training.rollout_seed``): such episodes are not held out."""
    if not isinstance(selection, dict) or not selection.get("seeds"):
        return []
    first, last = (int(s) for s in selection["seeds"])
    shared = [s for s in seeds if first <= s <= last]
    if not shared:
        return []
    return [f"{len(shared)} evaluation seed(s) ({shared[0]}-{shared[-1]}) are among the seeds "
            f"this policy was selected on ({first}-{last}): those episodes are not held out; "
            "choose another --seed"]  # fmt: skip


def _validation_loss(resolved: ResolvedPolicy) -> float | None:
    value = resolved.training.get("best_val_loss")
    return float(value) if isinstance(value, int | float) else None


def expert_normalized_scores(results: dict[str, list[EpisodeResult]]) -> dict[str, Any]:
    """Expert-normalized return and distance; survival on the expert's surviving starts
    (``results`` keyed by learner, expert and random)."""
    return normalized_scores(results[LEARNER], results[EXPERT], results[RANDOM])


def evaluate(
    request: EvaluateRequest,
    tracking_uri: str | None,
    progress: Progress | None = None,
    lookup_uri: str | None = None,
) -> EvaluateReport:
    """The whole stage: check the request, resolve the policy, run, write plots/report,
    log to MLflow.

    ``tracking_uri`` is a store already checked with :func:`pipeline.tracking.prepare`, or
    None to evaluate without tracking; an MLflow policy URI is then looked up in
    ``lookup_uri`` (default: MLFLOW_TRACKING_URI or the local SQLite store). The command's
    entry, which also opens the tracking store, is :func:`evaluate_tracked`.
    """
    check_request(request)
    return _run_checked(request, tracking_uri, progress, lookup_uri)


def evaluate_tracked(
    request: EvaluateRequest,
    no_track: bool,
    tracking_uri: str | None,
    progress: Progress | None = None,
) -> tuple[EvaluateReport, str | None]:
    """``pipeline evaluate``: check the request first (so nothing is created for a bad
    one), then resolve and check the tracking store (``--tracking-uri``, None: the default
    store; also where an MLflow policy URI is looked up), then run on the request's backend.
    Returns the report and the store it was tracked in (None with ``no_track``)."""
    from pipeline.rollout.cluster import cluster_session
    from pipeline.tracking import prepare

    check_request(request)
    uri = None if no_track else prepare(tracking_uri)
    with cluster_session(request.backend, uri):
        return _run_checked(request, uri, progress, tracking_uri), uri


def _run_checked(
    request: EvaluateRequest,
    tracking_uri: str | None,
    progress: Progress | None,
    lookup_uri: str | None,
) -> EvaluateReport:
    from pipeline.stages.evaluate.outputs import log_evaluation, make_plots, write_report

    resolved = resolve_policy_source(
        request.policy, tracking_uri or _lookup_uri(request, lookup_uri), exported=True
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
    from pipeline.tracking import resolve_tracking_uri

    return resolve_tracking_uri(cli_uri) if is_mlflow_uri(request.policy) else None
