"""The evaluate algorithm: roll a trained policy out (next to the expert and a random
policy on the same seeds) and write the report, plots, videos and MLflow run.

:mod:`.request` says what is asked and measured, :mod:`.run` runs it, :mod:`.outputs`
writes what people look at; the names below are the package's public API."""

from pipeline.rollout.scores import normalized
from pipeline.stages.evaluate.request import (
    EVALUATION_FILE,
    EXPERT,
    LEARNER,
    RANDOM,
    EvaluateReport,
    EvaluateRequest,
    check_request,
    side_by_side_path,
)
from pipeline.stages.evaluate.run import (
    evaluate,
    evaluate_tracked,
    expert_normalized_scores,
    learner_policy,
    run_evaluation,
)

__all__ = [
    "EVALUATION_FILE",
    "EXPERT",
    "LEARNER",
    "RANDOM",
    "EvaluateReport",
    "EvaluateRequest",
    "check_request",
    "evaluate",
    "evaluate_tracked",
    "expert_normalized_scores",
    "learner_policy",
    "normalized",
    "run_evaluation",
    "side_by_side_path",
]
