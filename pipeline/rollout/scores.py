"""Closed-loop scores of a policy against the expert and a random policy on the same seeds:
expert-normalized return, distance and pose reward, and survival on the starts the expert
survives.

One implementation for everything that ranks policies by their rollouts: ``pipeline
evaluate``, ``pipeline compare``, DAgger's per-iteration evaluation and the closed-loop
checkpoint selection of ``pipeline train``.
"""

from __future__ import annotations

import math
from typing import Any

from pipeline.core.intervals import wilson_interval
from pipeline.rollout.episodes import EpisodeResult, summarize


def normalized(learner: float, expert: float, random: float) -> float:
    """``(learner - random) / (expert - random)``: 0 is random, 1 is the expert."""
    span = expert - random
    return (learner - random) / span if abs(span) > 1e-12 else math.nan


def mean_of(summary: dict[str, Any], key: str) -> float:
    """The mean of metric ``key`` in a :func:`summarize` summary; NaN when absent."""
    value = summary.get(key)
    return float(value["mean"]) if isinstance(value, dict) else math.nan


def normalized_scores(
    learner: list[EpisodeResult], expert: list[EpisodeResult], random: list[EpisodeResult]
) -> dict[str, Any]:
    """Expert-normalized return, distance and pose reward (NaN where the env has none);
    survival on the expert's surviving starts."""
    summaries = [summarize(results) for results in (learner, expert, random)]
    scores: dict[str, Any] = {}
    for key in ("return", "distance", "pose_reward"):
        scores[f"normalized_{key}"] = normalized(*(mean_of(s, key) for s in summaries))
    expert_survived = {r.seed for r in expert if not r.fell}
    on_those = [r for r in learner if r.seed in expert_survived]
    survived = sum(not r.fell for r in on_those)
    scores["expert_surviving_starts"] = len(on_those)
    scores["survival_on_expert_surviving_starts"] = (
        survived / len(on_those) if on_those else math.nan
    )
    scores["survival_on_expert_surviving_starts_ci95"] = wilson_interval(survived, len(on_those))
    return scores
