"""Fixed-length rollout segments of a Gaussian policy: what reward-driven fine-tuning
learns from.

A :class:`SegmentTask` carries everything its steps depend on (the mean network's NumPy
forward pass, the spread, the curriculum and a seed), so a segment is a function of its
task: a worker that dies and a task given again produce the same steps, and the number of
workers changes nothing. Inside a segment, episodes follow one another; each episode's
reset seed, push and exploration noise come from its own stream derived from the task's
seed. The last episode is cut where the segment ends (``truncated``, and its next
observation kept for the critic to bootstrap from), as are episodes that reach the
training horizon.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

TRAINING_SEEDS_FROM = 1_000_000_000
"""Training episodes reset with seeds at or above this: never one of the small seed blocks
(0-99999) that selection, evaluation and the benchmarks use."""


@dataclass(frozen=True)
class Curriculum:
    """How training episodes are perturbed, each draw from the episode's own stream."""

    push_probability: float = 0.0
    """Share of episodes pushed on the torso (:mod:`sim.push`)."""
    push_impulse: tuple[float, float] = (0.0, 0.0)
    """Impulse range in N*s; a pushed episode draws uniformly from it."""
    action_noise: float = 0.0
    """Extra white noise on executed actions, in units of the policy's action std (not
    part of the learned distribution: the environment's randomness)."""


@dataclass(frozen=True)
class SegmentTask:
    """``steps`` control steps of the Gaussian policy ``N(forward(obs), std)``."""

    forward: Any
    """The mean action's NumPy forward pass (raw observations -> raw actions)."""
    std: np.ndarray
    """Per-dimension standard deviation of the exploration, in raw action units."""
    action_scale: np.ndarray
    """The policy's action std (its training data's), the unit of curriculum noise."""
    steps: int
    seed: int
    """Every random draw of the segment derives from it."""
    curriculum: Curriculum = field(default_factory=Curriculum)
    expert_labels: bool = False
    """Also return the shipped expert's action on every visited state (the anchor)."""


@dataclass
class Segment:
    """The steps of one task, with per-episode summaries of the episodes that ended."""

    obs: np.ndarray
    """(T, obs_dim) float32: the state each action was taken in."""
    actions: np.ndarray
    """(T, act_dim) float32: the sampled actions (before any curriculum noise)."""
    log_probs: np.ndarray
    """(T,) float64: log-density of each action under the policy that sampled it."""
    rewards: np.ndarray
    """(T,) float64."""
    terminated: np.ndarray
    """(T,) bool: the step ended its episode in a fall (no value beyond it)."""
    truncated: np.ndarray
    """(T,) bool: the episode was cut after the step (time limit or segment end)."""
    final_obs: np.ndarray
    """(number of truncated steps, obs_dim): the observation after each cut step, in step
    order: the critic's bootstrap."""
    episodes: list[dict[str, float]]
    """One row per episode that ended by a fall or the horizon: return, steps, fell,
    survived_s, pose_reward (NaN where the env has none), pushed impulse."""
    expert_actions: np.ndarray | None = None
    """(T, act_dim): the expert's actions on ``obs``, when asked."""
    wall_s: float = 0.0
    """Seconds the worker spent on the task."""
    sim_s: float = 0.0
    """Of those, seconds inside the environment's ``reset`` and ``step``: the bare
    simulator's share (the rest is the policy, sampling, bookkeeping and any expert
    labels)."""
    label_s: float = 0.0
    """Of ``wall_s``, seconds spent labelling the visited states with the expert's actions
    (the anchor's cost, not the rollout's)."""


def gaussian_log_prob(actions: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Log-density of ``actions`` under independent Gaussians, summed over the last axis."""
    z = (actions - mean) / std
    return (
        -0.5 * np.sum(z * z, axis=-1)
        - np.sum(np.log(std))
        - 0.5 * mean.shape[-1] * math.log(2 * math.pi)
    )


class SegmentWorker:
    """Owns one environment (and the expert when labels are asked); runs segments."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any]) -> None:
        import sim  # noqa: F401  (registers the environments in this process)

        self.env = gym.make(env_id, **env_kwargs)
        self.env_id = env_id
        self._expert: Any = None

    def _expert_act(self, obs: np.ndarray) -> np.ndarray:
        if self._expert is None:
            import sim

            self._expert = sim.load_expert(sim.EXPERT_FOR_ENV[self.env_id])
        return np.asarray(self._expert.act(obs), dtype=np.float32)

    def run(self, task: SegmentTask) -> Segment:
        start = time.perf_counter()
        act_dim = task.std.shape[0]
        dtype = self.env.action_space.dtype
        curriculum_noise = task.curriculum.action_noise * task.action_scale
        obs_rows, action_rows, means, rewards = [], [], [], []
        terminated, truncated, final_obs, episodes = [], [], [], []
        episode, sim_s = 0, 0.0
        while len(obs_rows) < task.steps:
            rng = np.random.default_rng(np.random.SeedSequence([task.seed, episode]))
            episode += 1
            options = _episode_options(task.curriculum, rng)
            seed = int(rng.integers(TRAINING_SEEDS_FROM, 2**31))
            tick = time.perf_counter()
            obs, info = self.env.reset(seed=seed, options=options)
            sim_s += time.perf_counter() - tick
            ret, steps, pose = 0.0, 0, 0.0
            while True:
                mean = np.asarray(task.forward(obs[None].astype(np.float32))[0], np.float64)
                action = mean + task.std * rng.standard_normal(act_dim)
                executed = action
                if task.curriculum.action_noise > 0:
                    executed = action + curriculum_noise * rng.standard_normal(act_dim)
                obs_rows.append(obs)
                action_rows.append(action)
                means.append(mean)
                tick = time.perf_counter()
                obs, reward, fell, timed_out, info = self.env.step(executed.astype(dtype))
                sim_s += time.perf_counter() - tick
                rewards.append(float(reward))
                ret += float(reward)
                steps += 1
                pose += float(info.get("reward_pose", math.nan))
                cut = timed_out or (len(obs_rows) >= task.steps and not fell)
                terminated.append(bool(fell))
                truncated.append(bool(cut))
                if cut:
                    final_obs.append(obs)
                if fell or timed_out:
                    episodes.append(
                        {
                            "return": ret,
                            "steps": steps,
                            "fell": float(fell),
                            "survived_s": float(info.get("sim_time", math.nan)),
                            "pose_reward": pose / steps,
                            "push_impulse": float(
                                (options or {}).get("push", {}).get("impulse", 0.0)
                            ),
                        }
                    )
                if fell or cut:
                    break
        obs_array = np.asarray(obs_rows, dtype=np.float32)
        sampled = np.asarray(action_rows)
        tick = time.perf_counter()
        expert_actions = self._expert_act(obs_array) if task.expert_labels else None
        label_s = time.perf_counter() - tick
        return Segment(
            obs=obs_array,
            actions=sampled.astype(np.float32),
            # In one pass after the loop: the same numbers as per step (NumPy sums each row
            # alike), without the per-step calls.
            log_probs=gaussian_log_prob(sampled, np.asarray(means), task.std),
            rewards=np.asarray(rewards, dtype=np.float64),
            terminated=np.asarray(terminated, dtype=bool),
            truncated=np.asarray(truncated, dtype=bool),
            final_obs=np.asarray(final_obs, dtype=np.float32).reshape(-1, obs_array.shape[1]),
            episodes=episodes,
            expert_actions=expert_actions,
            wall_s=time.perf_counter() - start,
            sim_s=sim_s,
            label_s=label_s,
        )

    def close(self) -> None:
        self.env.close()


def _episode_options(curriculum: Curriculum, rng: np.random.Generator) -> dict[str, Any] | None:
    """This episode's reset options: a push drawn from the curriculum, or none."""
    if curriculum.push_probability <= 0 or rng.random() >= curriculum.push_probability:
        return None
    low, high = curriculum.push_impulse
    return {"push": {"impulse": float(rng.uniform(low, high)), "time": None}}
