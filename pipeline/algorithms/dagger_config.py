"""DAgger's typed config, apart from the algorithm so that the command line builds its
options from it without importing what DAgger runs on."""

from __future__ import annotations

from pydantic import Field

from models.config import StrictConfig
from pipeline.rollout.cluster import LOCAL, Backend


class DaggerConfig(StrictConfig):
    """How DAgger gathers labels (the policy's own training is a ``TrainConfig``)."""

    iterations: int = Field(4, ge=1)
    """Rollout iterations after the initial fit (iteration 0)."""
    episodes_per_iteration: int = Field(10, ge=1)
    """Episodes of the expert-learner mixture recorded per iteration."""
    beta: float = Field(0.5, ge=0.0, le=1.0)
    """Probability that the expert acts at a step in iteration 1."""
    beta_decay: float = Field(0.5, ge=0.0, le=1.0)
    """beta_i = beta * beta_decay ** (i - 1): the learner drives more as it improves."""
    from_scratch: bool = False
    """Refit each policy from the seed instead of the previous policy's weights."""
    max_labels: int | None = Field(None, ge=1)
    """Label budget (initial data included), never exceeded: an iteration records only the
    episodes that fit at the longest episode length seen (or the mixture episodes' step
    limit where that is shorter), and none once not one fits."""
    episode_seconds: float | None = Field(None, gt=0)
    """Time limit of the mixture episodes in simulated seconds (default: the env's, 20 s
    for the walk, 16.5 s for the run). The learners' falls come in the first seconds (the
    walk's 1.35-3 s after a random start phase, the run's while it sets off from rest);
    short episodes spread the labels over many more starts. Evaluation keeps the env's
    length."""
    lead_seconds: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    """Before each mixture episode the learner alone drives for a time drawn uniformly from
    [0, lead_seconds], unlabelled and not stored; the episode stored is the
    ``episode_seconds`` after it, or, where the learner falls during the lead, the
    ``episode_seconds`` that end at its fall. Short episodes put the labels on the starts;
    a lead also puts them on the learner's later walking and on its falls, at no cost in
    labels. Needs ``episode_seconds``; 0: every episode starts at the reset."""
    lead_share: float = Field(1.0, gt=0.0, le=1.0)
    """The probability that a mixture episode has a lead; the others start at the reset,
    where the walk's early falls come from."""
    eval_episodes: int = Field(40, ge=1)
    """Held-out evaluation episodes per iteration."""
    eval_seed: int = 1000
    """First evaluation seed (the rollouts use seeds derived from ``seed``)."""
    final_fits: int = Field(0, ge=0)
    """After the last iteration, fit the whole aggregate this many more times from scratch
    (training seeds ``seed``, ``seed + 100``, ... of the training config) and publish,
    of those and the last iteration's policy, the one that walks best on the selection
    seeds. The same labels fitted twice can walk several points apart
    (docs/benchmarks/walk-dagger.md, choosing the final fit in closed loop). 0: publish the
    last iteration's policy."""
    final_fit_epochs: int | None = Field(None, ge=1)
    """Epochs of each final fit (default: the training config's; a fit from scratch may
    need more than a warm-started refit)."""
    selection_episodes: int = Field(200, ge=1)
    """Episodes per final candidate on the selection seeds."""
    selection_seed: int = Field(3000, ge=0)
    """First selection seed; the selection seeds must not overlap the evaluation seeds."""
    workers: int = Field(2, ge=1)
    """Worker processes for rollouts and evaluation."""
    backend: Backend = Field(LOCAL, exclude=True)
    """Where the workers run: local processes or Ray actors. Left out of the saved config
    and of what a resume compares: the episodes are the same on either."""
    seed: int = 0
    """Seeds the rollouts (the training seed is the TrainConfig's)."""

    def beta_at(self, iteration: int) -> float:
        """The expert's share of the steps in ``iteration`` (>= 1)."""
        return self.beta * self.beta_decay ** (iteration - 1)
