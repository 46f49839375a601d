"""``pipeline compare``: several policies, or groups of them, on the same held-out seeds.

One training run of behaviour cloning can walk 5% or 98% of the time depending on its
seed, so methods are ranked by groups of runs (``--group bc=runs/bc-s*``): every policy
runs the same seeds, the expert and a uniform random policy run them once, and each group
gets the mean over its policies with a 95% interval (Student's t over the policies), its
worst and best, next to each policy's own row.
"""

from __future__ import annotations

import glob
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.core.intervals import mean_half_width
from pipeline.core.outputs import check_output_path
from pipeline.rollout.action_noise import check_action_noise
from pipeline.rollout.episodes import EpisodeResult, summarize
from pipeline.rollout.options import check_episode_options, parse_push
from pipeline.rollout.policy_source import (
    is_mlflow_uri,
    local_policy_env,
    resolve_policy_source,
)
from pipeline.rollout.scores import mean_of
from pipeline.stages.evaluate import (
    EXPERT,
    LEARNER,
    RANDOM,
    EvaluateRequest,
    expert_normalized_scores,
    run_evaluation,
)

METRICS = ("survival", "survival_on_expert_starts", "normalized_distance", "pose_reward")
"""What each policy row holds and each group summarizes."""


@dataclass(frozen=True)
class CompareRequest:
    """Which policies, in which groups, on which seeds."""

    groups: dict[str, list[str]]
    """Group name -> policy sources (directories or MLflow URIs), in order."""
    episodes: int = 40
    seed: int = 1000
    workers: int = 2
    json_path: Path | None = None
    overwrite: bool = False
    push: str | None = None
    """``IMPULSE[@TIME]``: push every episode of every policy alike (``evaluate --push``)."""
    action_noise: float = 0.0
    """Noise on every executed action of the learners and the expert, in the expert's
    action scales (``evaluate --action-noise``)."""


@dataclass
class CompareReport:
    """Per policy its scores; per group the mean with its interval, worst and best."""

    env_id: str
    seeds: list[int]
    policies: list[dict[str, Any]] = field(default_factory=list)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    expert: dict[str, Any] = field(default_factory=dict)
    random: dict[str, Any] = field(default_factory=dict)
    push: dict[str, Any] | None = None
    """How every episode was pushed (``--push``), if it was."""
    action_noise: float = 0.0
    """The ``--action-noise`` every policy but random acted under."""


def parse_groups(specs: list[str], policies: list[str]) -> dict[str, list[str]]:
    """``NAME=PATTERN`` groups (a shell pattern matching policy or run directories, or one
    MLflow URI) and single ``--policy`` entries (a group of one, named by the policy)."""
    groups: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, pattern = spec.partition("=")
        if not sep or not name or not pattern:
            raise PipelineError(f"--group {spec}: expected NAME=PATTERN, e.g. bc=runs/bc-s*")
        if name in groups:
            raise PipelineError(f"--group {spec}: group {name!r} is given twice")
        matches = [pattern] if is_mlflow_uri(pattern) else sorted(glob.glob(pattern))
        if not matches:
            raise PipelineError(f"--group {spec}: matches no policy")
        groups[name] = matches
    for policy in policies:
        if policy in groups:
            raise PipelineError(f"--policy {policy}: also a group name")
        groups[policy] = [policy]
    if not groups:
        raise PipelineError("--group or --policy: give at least one policy to compare")
    return groups


def check_request(request: CompareRequest) -> str | None:
    """Every check that needs nothing loaded; returns the env of the local policies."""
    check_episode_options(request.episodes, request.workers, None, request.json_path,
                          request.overwrite)  # fmt: skip
    if request.json_path is not None:
        check_output_path(request.json_path, "--json", (".json",), overwrite=request.overwrite)
    if request.push is not None:
        parse_push(request.push)
    check_action_noise(request.action_noise)
    envs: dict[str, str] = {}
    for name, sources in request.groups.items():
        for source in sources:
            if is_mlflow_uri(source):
                continue
            env = local_policy_env(source)
            if env is None:
                raise PipelineError(f"--group {name}: {source} is not a policy or run directory")
            envs[source] = env
    if len(set(envs.values())) > 1:
        first, *others = sorted(envs.items(), key=lambda item: item[1])
        other = next(o for o in others if o[1] != first[1])
        raise PipelineError(
            f"--group: policies for different environments ({first[0]}: {first[1]}; "
            f"{other[0]}: {other[1]})"
        )
    return next(iter(envs.values()), None)


def compare(request: CompareRequest, lookup_uri: str | None = None) -> CompareReport:
    """Evaluate every policy on the same seeds and summarize each group."""
    check_request(request)
    baselines: dict[str, list[EpisodeResult]] = {}
    report: CompareReport | None = None
    for name, sources in request.groups.items():
        for source in sources:
            resolved = resolve_policy_source(source, lookup_uri, exported=True)
            if report is not None and resolved.loaded.spec.env_id != report.env_id:
                raise PipelineError(
                    f"--group {name}: {source} was trained on {resolved.loaded.spec.env_id}, "
                    f"the others on {report.env_id}"
                )
            evaluation = run_evaluation(EvaluateRequest(
                policy=source, episodes=request.episodes, seed=request.seed,
                workers=request.workers, compare_expert=not baselines, push=request.push,
                action_noise=request.action_noise),
                resolved)  # fmt: skip
            if not baselines:
                baselines = {EXPERT: evaluation.results[EXPERT],
                             RANDOM: evaluation.results[RANDOM]}  # fmt: skip
                report = CompareReport(env_id=evaluation.env_id, seeds=evaluation.seeds,
                                       expert=summarize(baselines[EXPERT]),
                                       random=summarize(baselines[RANDOM]),
                                       push=evaluation.env_kwargs.get("push"),
                                       action_noise=request.action_noise)  # fmt: skip
            assert report is not None
            learner = evaluation.results[LEARNER]
            scores = expert_normalized_scores({LEARNER: learner, **baselines})
            summary = summarize(learner)
            report.policies.append({
                "group": name, "policy": source, "survival": summary["survival_rate"],
                "survival_ci95": summary["survival_ci95"],
                "survival_on_expert_starts": scores["survival_on_expert_surviving_starts"],
                "normalized_distance": scores["normalized_distance"],
                "pose_reward": mean_of(summary, "pose_reward"),
                "action_error": mean_of(summary, "action_error"),
            })  # fmt: skip
    assert report is not None
    for name in request.groups:
        rows = [row for row in report.policies if row["group"] == name]
        report.groups[name] = {key: _group_stat([row[key] for row in rows]) for key in METRICS}
        report.groups[name]["policies"] = len(rows)
    return report


def _group_stat(values: list[float]) -> dict[str, float]:
    """Mean over a group's policies, its 95% half-width (NaN for one policy), worst, best."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"mean": math.nan, "ci95": math.nan, "worst": math.nan, "best": math.nan}
    return {
        "mean": sum(finite) / len(finite),
        "ci95": mean_half_width(finite),
        "worst": min(finite),
        "best": max(finite),
    }
