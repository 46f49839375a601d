"""Where an evaluation's results go: plots, the JSON report, and an MLflow run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipeline.core.outputs import write_json
from pipeline.reports.evaluation_plots import plot_action_error, plot_episodes, plot_trajectories
from pipeline.rollout.filming import Filmed, caption, film, film_policy
from pipeline.rollout.policies import Policy
from pipeline.rollout.policy_source import ResolvedPolicy
from pipeline.rollout.video import Filming, side_by_side
from pipeline.stages.evaluate.request import (
    EVALUATION_FILE,
    EXPERT,
    LEARNER,
    EvalEnv,
    EvaluateReport,
    EvaluateRequest,
    side_by_side_path,
)
from pipeline.tracking import DEFAULT_EXPERIMENT, flatten_params, open_tracker, run_name

PLOTS_DIR = "plots"


def _joint_indices(names: tuple[str, ...], count: int = 4) -> list[int]:
    """Both knees, then hips: the joints whose commands show a gait at a glance."""
    order = [i for word in ("knee", "hip") for i, n in enumerate(names) if word in n]
    return (order or list(range(len(names))))[:count]


def make_plots(report: EvaluateReport, out: Path) -> list[Path]:
    """Write the evaluation's PNGs under ``out/plots``; returns their paths."""
    from sim.mirror import action_names

    plots = out / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    written = [plots / "episodes.png"]
    plot_episodes(report.results, written[0])
    curve = report.summaries[LEARNER].get("action_error_by_second")
    if curve:
        written.append(plots / "action_error.png")
        running = report.summaries[LEARNER].get("episodes_by_second")
        plot_action_error(curve, running, report.validation_loss, written[-1])
    shown = report.shown
    traced = {
        name: episode
        for name, episodes in report.results.items()
        for episode in episodes
        if shown and episode.seed == shown.seed and episode.actions is not None
    }
    if shown and LEARNER in traced:
        first = traced[LEARNER]
        dt = first.survived_s / first.steps if first.steps else 1.0
        names = action_names(report.env_id)
        written.append(plots / "trajectories.png")
        title = f"joint commands, seed {shown.seed}: {shown.reason}"
        plot_trajectories({k: r.actions for k, r in traced.items()}, list(names),
                          _joint_indices(names), dt, written[-1], title)  # fmt: skip
    report.plots = [str(p) for p in written]
    return written


def make_videos(
    report: EvaluateReport, video: Path, policies: dict[str, Policy], env: EvalEnv, scratch: Path
) -> list[Filmed]:
    """Replay the shown seed: the learner into ``video``, with the expert beside it when it
    ran, and the learner's first fall if it fell anywhere."""
    shown = report.shown
    assert shown is not None
    filmed = film_policy(env.env_id, env.kwargs, policies[LEARNER], LEARNER,
                         report.results[LEARNER], shown, video)  # fmt: skip
    if EXPERT not in policies:
        return filmed
    expert_video = scratch / "expert.mp4"
    measured = next(r for r in report.results[EXPERT] if r.seed == shown.seed)
    text = caption(f"{EXPERT}, seed {shown.seed}: {shown.reason}")
    note = film(env.env_id, env.kwargs, policies[EXPERT], shown.seed,
                Filming(str(expert_video), text), measured)  # fmt: skip
    target = side_by_side_path(video)
    side_by_side(video, expert_video, target, env.fps, labels=(LEARNER, EXPERT))
    what = f"{LEARNER} (left) and {EXPERT} (right); {shown.reason}{note}"
    filmed.insert(1, Filmed(str(target), shown.seed, what))
    return filmed


def write_report(report: EvaluateReport, out: Path, json_path: Path | None) -> None:
    """``out/evaluation.json`` and, if asked, a copy at ``json_path``."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / EVALUATION_FILE, report.to_dict())
    if json_path is not None:
        write_json(json_path, report.to_dict())


def eval_metrics(report: EvaluateReport) -> dict[str, float]:
    """Flat ``eval/...`` metrics for MLflow (finite values only)."""
    metrics: dict[str, float] = {}
    for name, summary in report.summaries.items():
        prefix = "eval/" if name == LEARNER else f"eval/{name}/"
        metrics[f"{prefix}survival_rate"] = summary["survival_rate"]
        for key in ("survived_s", "distance", "speed", "return", "pose_reward", "action_error"):
            if isinstance(summary.get(key), dict):
                metrics[f"{prefix}{key}"] = summary[key]["mean"]
                metrics[f"{prefix}{key}_ci95"] = summary[key]["ci95"]
    for key, value in report.scores.items():
        if isinstance(value, int | float):
            metrics[f"eval/{key}"] = float(value)
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}


def _link(resolved: ResolvedPolicy, tracking_uri: str) -> tuple[str | None, str]:
    """(parent run id, experiment): nest under the training run when it is in this store."""
    run_id = resolved.training_run_id
    if run_id is None:
        return None, DEFAULT_EXPERIMENT
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
        experiment = client.get_experiment(run.info.experiment_id).name
    except MlflowException:
        return None, DEFAULT_EXPERIMENT  # trained against another store: tag only
    return run_id, experiment


def log_evaluation(
    report: EvaluateReport,
    resolved: ResolvedPolicy,
    request: EvaluateRequest,
    tracking_uri: str,
    plots: list[Path],
) -> None:
    """One MLflow run for the evaluation, nested under the training run when possible."""
    parent, experiment = _link(resolved, tracking_uri)
    tags: dict[str, Any] = {"stage": "evaluate", "env_id": report.env_id,
                            "policy": request.policy}  # fmt: skip
    if resolved.training_run_id:
        tags["training_run_id"] = resolved.training_run_id
    model = resolved.loaded.config.get("model", {}).get("name", "policy")
    name = run_name("eval", report.env_id, str(model))
    with open_tracker(tracking_uri, experiment, name, parent_run_id=parent, tags=tags) as tracker:
        report.eval_run_id = tracker.run_id
        tracker.log_params(flatten_params({
            "policy": request.policy, "env_id": report.env_id, "episodes": request.episodes,
            "seed": request.seed, "compare_expert": request.compare_expert,
            "env_kwargs": report.env_kwargs, "action_noise": request.action_noise,
        }))  # fmt: skip
        tracker.log_metrics(eval_metrics(report), step=0)
        curve = report.summaries[LEARNER].get("action_error_by_second") or []
        for second, value in enumerate(curve):
            tracker.log_metrics({"eval/action_error_by_second": value}, step=second)
        for plot in plots:
            tracker.log_artifact(plot, PLOTS_DIR)
        for video in report.videos:
            tracker.log_artifact(video, "videos")
        tracker.log_dict(report.to_dict(), EVALUATION_FILE)
