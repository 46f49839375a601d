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
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
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


EXPERT_ACTED = "expert_acted"
"""Per-step info of a mixture episode: 1 where the expert chose the executed action."""


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
    tick = time.perf_counter()
    seed = attempt_seed(task.base_seed, task.attempt)
    rng = noise_rng(task.base_seed, task.attempt)
    noise = ActionNoise(task.noise, expert.action_scale)
    chooser = mixture_rng(task.base_seed, task.attempt)
    dtype = env.action_space.dtype
    obs, _ = env.reset(seed=seed, options=task.options)
    if learner is not None:
        learner.reset(seed)
    observations, labels, executed, rewards, terms, truncs = [obs], [], [], [], [], []
    frames = [env.render()] if task.render else []
    expert_acted: list[float] = []
    infos: dict[str, list[float]] = {}
    terminated = truncated = False
    info: dict[str, Any] = {}
    while not (terminated or truncated):
        by_expert = not mixing or chooser.random() < task.beta
        if by_expert:
            label = expert.act(obs).astype(dtype)
            action = label
            if task.noise > 0:
                action = noise.perturb(label, rng).astype(dtype)
        else:
            assert learner is not None
            label = action = np.asarray(learner.act(obs)).astype(dtype)
        expert_acted.append(float(by_expert))
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        if task.render:
            frames.append(env.render())
        labels.append(label)
        executed.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        for key, value in info.items():
            if isinstance(value, int | float | bool | np.number | np.bool_):
                infos.setdefault(key, []).append(float(value))
    arrays = {k: np.asarray(v) for k, v in infos.items() if len(v) == len(rewards)}
    actions = np.asarray(labels, dtype=dtype)
    timings = {"rollout": time.perf_counter() - tick, "relabel": 0.0}
    if mixing:
        # The expert labels every state the mixture visited, in one batched pass.
        tick = time.perf_counter()
        actions = np.asarray(expert.act(np.asarray(observations[:-1])), dtype=dtype)
        timings["relabel"] = time.perf_counter() - tick
        arrays[EXPERT_ACTED] = np.asarray(expert_acted)
    return Episode(
        observations=np.asarray(observations, dtype=env.observation_space.dtype),
        actions=actions,
        executed_actions=(np.asarray(executed, dtype=dtype) if task.noise > 0 or mixing else None),
        rewards=np.asarray(rewards, dtype=np.float64),
        terminations=np.asarray(terms, dtype=bool),
        truncations=np.asarray(truncs, dtype=bool),
        infos=arrays,
        images=np.asarray(frames, dtype=np.uint8) if task.render else None,
        seed=seed,
        attempt=task.attempt,
        fell=bool(info.get("fell", terminated)),
        distance=float(info.get("distance", math.nan)),
        timings=timings,
    )
