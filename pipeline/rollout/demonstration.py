"""Record one expert-labelled episode: the expert's demonstration, with optional noise
injection, or DAgger's mixture of expert and learner.

DART-style noise injection: the executed action is the expert's plus Gaussian noise of
``noise`` times the expert's per-dimension action scale, while the stored label is the
clean expert action, so the demonstrations visit the states a slightly-off learner
reaches and show how the expert recovers from them.

DAgger's mixture (``beta`` < 1 and a learner): at each step the expert acts with
probability ``beta`` (drawn from a generator of its own, seeded by the attempt), the
learner otherwise; after the episode the expert labels every visited state in one batched
forward pass. The learner's states are what the next policy must learn to recover from.

A lead (DAgger's ``lead_seconds``): before the recorded part the learner alone drives for
a seeded random time, unlabelled; the episode returned is the window after it, or, where
the learner falls first, the window that ends at its fall. The labels then land on the
states the learner reaches later in its walk (and on those that lead to its falls)
without spending any on the steps that lead there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from datasets import Episode
from pipeline.rollout.action_noise import ActionNoise
from pipeline.rollout.policies import Policy
from sim import MLPExpert


def attempt_seed(base_seed: int, attempt: int) -> int:
    """Reset seed of attempt ``attempt``: a function of (base seed, attempt) only, so an
    attempt is the same episode whichever worker runs it and however often it is resumed."""
    return int(np.random.SeedSequence([base_seed, attempt]).generate_state(1, np.uint32)[0])


def noise_rng(base_seed: int, attempt: int) -> np.random.Generator:
    """The noise generator of an attempt, independent of the environment's own stream."""
    return np.random.default_rng(np.random.SeedSequence([base_seed, attempt, 1]))


def mixture_rng(base_seed: int, attempt: int) -> np.random.Generator:
    """The generator choosing who acts at each step of a mixture attempt (its own stream,
    so the same attempt mixes the same way with or without noise)."""
    return np.random.default_rng(np.random.SeedSequence([base_seed, attempt, 2]))


def lead_rng(base_seed: int, attempt: int) -> np.random.Generator:
    """The generator drawing how long the learner leads alone in an attempt."""
    return np.random.default_rng(np.random.SeedSequence([base_seed, attempt, 3]))


EXPERT_ACTED = "expert_acted"
"""Per-step info of a mixture episode: 1 where the expert chose the executed action."""


@dataclass(frozen=True)
class Lead:
    """The learner alone drives first; only a window of the episode is returned."""

    max_seconds: float
    """The lead lasts a time drawn uniformly from [0, max_seconds] (to the next step)."""
    window_seconds: float
    """Simulated seconds returned after the lead (or before a fall during it)."""
    window_steps: int
    """The most steps the window holds (the step limit of a ``window_seconds`` episode),
    so a label budget counted in such episodes is never exceeded."""
    share: float = 1.0
    """The probability that an attempt has a lead at all; the others start at the reset."""


@dataclass(frozen=True)
class DemoTask:
    """One recording attempt."""

    attempt: int
    """Attempt index (0-based, never reused within a file)."""
    base_seed: int
    """The recording's ``--seed``; the attempt's seeds derive from it."""
    noise: float = 0.0
    """Noise scale in units of the expert's action scale (0 = clean expert)."""
    options: dict[str, Any] | None = None
    """Reset options passed to the environment."""
    beta: float = 1.0
    """Probability that the expert acts at a step; below 1 the learner acts otherwise."""
    render: bool = False
    """Store ``env.render()`` of every state as the episode's images (the env renders
    with the recording's camera)."""
    lead: Lead | None = None
    """Let the learner drive alone first (the env's time limit must cover lead and window)."""


def record_demonstration(
    env: gym.Env, expert: MLPExpert, task: DemoTask, learner: Policy | None = None
) -> Episode:
    """Run the expert (or, with ``task.beta`` < 1, the mixture of expert and ``learner``)
    for one episode and return its arrays; labels are the expert's clean actions.

    Applied actions are cast to the action space's dtype first, so the stored executed
    action is bit-for-bit what the simulation received (the walk amplifies even float32
    rounding differences into a different trajectory).
    """
    mixing = task.beta < 1.0
    if mixing and learner is None:
        raise ValueError(f"beta {task.beta} < 1 needs a learner to act on the other steps")
    if task.lead is not None and learner is None:
        raise ValueError("a lead needs a learner to drive it")
    relabelled = mixing or task.lead is not None
    tick = time.perf_counter()
    seed = attempt_seed(task.base_seed, task.attempt)
    rng = noise_rng(task.base_seed, task.attempt)
    noise = ActionNoise(task.noise, expert.action_scale)
    chooser = mixture_rng(task.base_seed, task.attempt)
    dtype = env.action_space.dtype
    obs, _ = env.reset(seed=seed, options=task.options)
    if learner is not None:
        learner.reset(seed)
    observations = [obs]
    frames = [env.render()] if task.render else []
    steps = _Steps()
    terminated = truncated = False
    info: dict[str, Any] = {}
    lead_s = _lead_seconds(task)
    times = [0.0]  # simulated seconds at each state
    window_start: int | None = None if task.lead else 0
    while not (terminated or truncated):
        if window_start is None and times[-1] >= lead_s:
            window_start = len(steps.labels)
        # During a lead the learner drives alone; the mixture draws start with the window.
        by_expert = window_start is not None and (not mixing or chooser.random() < task.beta)
        if by_expert:
            label = expert.act(obs).astype(dtype)
            action = label
            if task.noise > 0:
                action = noise.perturb(label, rng).astype(dtype)
        else:
            assert learner is not None
            label = action = np.asarray(learner.act(obs)).astype(dtype)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        if task.render:
            frames.append(env.render())
        steps.add(label, action, by_expert, reward, terminated, truncated, info)
        times.append(float(info.get("sim_time", math.nan)))
        if task.lead and window_start is not None and not terminated:
            window_ended = (
                times[-1] - times[window_start] >= task.lead.window_seconds - 1e-9
                or len(steps.labels) - window_start >= task.lead.window_steps
            )
            truncated = steps.truncs[-1] = truncated or window_ended
    if task.lead:
        first = _window_start(window_start, times, task.lead)
        observations, frames, steps = observations[first:], frames[first:], steps.since(first)
    arrays = steps.info_arrays()
    actions = np.asarray(steps.labels, dtype=dtype)
    timings = {"rollout": time.perf_counter() - tick, "relabel": 0.0}
    if relabelled:
        # The expert labels every state the mixture visited, in one batched pass.
        tick = time.perf_counter()
        actions = np.asarray(expert.act(np.asarray(observations[:-1])), dtype=dtype)
        timings["relabel"] = time.perf_counter() - tick
        arrays[EXPERT_ACTED] = np.asarray(steps.expert_acted)
    return Episode(
        observations=np.asarray(observations, dtype=env.observation_space.dtype),
        actions=actions,
        executed_actions=(
            np.asarray(steps.executed, dtype=dtype) if task.noise > 0 or relabelled else None
        ),
        rewards=np.asarray(steps.rewards, dtype=np.float64),
        terminations=np.asarray(steps.terms, dtype=bool),
        truncations=np.asarray(steps.truncs, dtype=bool),
        infos=arrays,
        images=np.asarray(frames, dtype=np.uint8) if task.render else None,
        seed=seed,
        attempt=task.attempt,
        fell=bool(info.get("fell", terminated)),
        distance=float(info.get("distance", math.nan)),
        timings=timings,
    )


@dataclass
class _Steps:
    """What each step of an episode stores (labels before the expert's relabelling)."""

    labels: list[np.ndarray] = field(default_factory=list)
    executed: list[np.ndarray] = field(default_factory=list)
    expert_acted: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terms: list[bool] = field(default_factory=list)
    truncs: list[bool] = field(default_factory=list)
    infos: dict[str, list[float]] = field(default_factory=dict)

    def add(self, label: np.ndarray, action: np.ndarray, by_expert: bool, reward: float,
            terminated: bool, truncated: bool, info: dict[str, Any]) -> None:  # fmt: skip
        self.labels.append(label)
        self.executed.append(action)
        self.expert_acted.append(float(by_expert))
        self.rewards.append(reward)
        self.terms.append(terminated)
        self.truncs.append(truncated)
        for key, value in info.items():
            if isinstance(value, int | float | bool | np.number | np.bool_):
                self.infos.setdefault(key, []).append(float(value))

    def info_arrays(self) -> dict[str, np.ndarray]:
        """The numeric infos every step reported."""
        count = len(self.rewards)
        return {k: np.asarray(v) for k, v in self.infos.items() if len(v) == count}

    def since(self, first: int) -> _Steps:
        """The steps from ``first`` on; an info some step lacked is dropped."""
        count = len(self.rewards)
        return _Steps(
            self.labels[first:], self.executed[first:], self.expert_acted[first:],
            self.rewards[first:], self.terms[first:], self.truncs[first:],
            {k: v[first:] for k, v in self.infos.items() if len(v) == count},
        )  # fmt: skip


def _lead_seconds(task: DemoTask) -> float:
    """How long the learner drives alone before the window (0 without a lead)."""
    if task.lead is None:
        return 0.0
    rng = lead_rng(task.base_seed, task.attempt)
    # No share draw at 1, so every-episode leads keep the draws they had before shares.
    if task.lead.share < 1.0 and rng.random() >= task.lead.share:
        return 0.0
    return float(rng.uniform(0.0, task.lead.max_seconds))


def _window_start(start: int | None, times: list[float], lead: Lead) -> int:
    """First step returned: where the window began, or, when the episode ended during the
    lead, the earliest step within ``lead.window_seconds`` (and ``lead.window_steps``) of
    the end."""
    if start is not None:
        return start
    end = len(times) - 1
    first = end
    while (
        first > 0
        and end - (first - 1) <= lead.window_steps
        and (times[end] - times[first - 1] <= lead.window_seconds + 1e-9)
    ):
        first -= 1
    return first
