"""Closed-loop scoring of a policy while it trains (robomimic's "rollouts during training").

Validation loss is a poor model-selection signal for behaviour cloning: on-policy action
error was 5-575x the validation error here, and one config gave 5% and 98% survival with
two training seeds. :class:`ClosedLoopJudge` rolls a policy out on its own block of seeds
(kept apart from evaluation seeds) next to the expert and a random policy, which run once,
and scores it by survival, then expert-normalized distance (pose reward for a skill
that does not travel).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pipeline.rollout.episodes import EpisodeResult, summarize
from pipeline.rollout.options import is_motion_env
from pipeline.rollout.policies import ExpertPolicy, LearnedPolicy, RandomPolicy
from pipeline.rollout.scores import mean_of, normalized_scores
from pipeline.rollout.workers import EpisodeTask, run_episodes

if TYPE_CHECKING:
    from models.spec import PolicySpec


def score_key(score: dict[str, float]) -> tuple[float, float]:
    """The order of closed-loop scores: survival first, then normalized distance, or for a
    skill that does not travel (no distance, so NaN) the normalized pose reward; NaN
    counts as the worst."""

    def finite(value: float) -> float:
        return value if math.isfinite(value) else -math.inf

    second = score["normalized_distance"]
    if not math.isfinite(second):
        second = score.get("normalized_pose_reward", math.nan)
    return finite(score["survival"]), finite(second)


class ClosedLoopJudge:
    """Scores a Keras policy by rolling it out on seeds ``seed .. seed + episodes - 1``.

    The walk starts from a random phase, as ``pipeline evaluate`` does. The policy is
    compiled to its NumPy forward pass, so the workers need no TensorFlow; a model that
    has none runs in this process.
    """

    def __init__(
        self, env_id: str, spec: PolicySpec, episodes: int, seed: int, workers: int
    ) -> None:
        import gymnasium as gym

        import sim  # noqa: F401  (registers the environments)

        self.env_id = env_id
        self.spec = spec
        self.seeds = list(range(seed, seed + episodes))
        self.workers = workers
        self.env_kwargs: dict[str, Any] = {"start_phase": "random"} if is_motion_env(env_id) else {}
        if spec.camera is not None:  # the policy sees frames: painted as when recorded
            self.env_kwargs["render_mode"] = "rgb_array"
        env = gym.make(env_id)
        try:
            self._low, self._high = env.action_space.low, env.action_space.high
        finally:
            env.close()
        self._baselines: tuple[list[EpisodeResult], list[EpisodeResult]] | None = None

    def _run(self, policy: Any, workers: int) -> list[EpisodeResult]:
        tasks = [EpisodeTask(seed) for seed in self.seeds]
        return run_episodes(self.env_id, self.env_kwargs, policy, tasks, workers)

    def baselines(self) -> tuple[list[EpisodeResult], list[EpisodeResult]]:
        """The expert's and the random policy's episodes on the judge's seeds (run once)."""
        if self._baselines is None:
            import sim

            expert = ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[self.env_id]))
            random = RandomPolicy(self._low.astype(float), self._high.astype(float))
            self._baselines = (self._run(expert, self.workers), self._run(random, self.workers))
        return self._baselines

    def __call__(self, model: Any) -> dict[str, float]:
        """Survival, normalized distance and mean distance of ``model`` with its current
        weights."""
        from models.inference import NumpyForward, compile_forward

        forward = compile_forward(model)
        workers = self.workers if isinstance(forward, NumpyForward) else 1
        policy = LearnedPolicy(forward, self.spec.history, camera=self.spec.camera,
                               inputs=self.spec.inputs)  # fmt: skip
        learner = self._run(policy, workers)
        expert, random = self.baselines()
        summary = summarize(learner)
        scores = normalized_scores(learner, expert, random)
        score = {
            "survival": float(summary["survival_rate"]),
            "normalized_distance": float(scores["normalized_distance"]),
            "distance": mean_of(summary, "distance"),
        }
        if math.isfinite(scores["normalized_pose_reward"]):  # the motion-imitation envs
            score["normalized_pose_reward"] = float(scores["normalized_pose_reward"])
        return score
