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
    envs: int = 1
    """Environments that share the steps, stepping in lockstep with one forward pass of the
    policy for all (each with its own episodes and streams): the policy's cost per step
    shrinks. The segment holds each environment's steps in turn."""


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
    """Owns the environments of its segments (and the expert when labels are asked)."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any]) -> None:
        import sim  # noqa: F401  (registers the environments in this process)

        self.env_id = env_id
        self.env_kwargs = env_kwargs
        self.envs = [gym.make(env_id, **env_kwargs)]
        self._expert: Any = None

    def _expert_act(self, obs: np.ndarray) -> np.ndarray:
        if self._expert is None:
            import sim

            self._expert = sim.load_expert(sim.EXPERT_FOR_ENV[self.env_id])
        return np.asarray(self._expert.act(obs), dtype=np.float32)

    def run(self, task: SegmentTask) -> Segment:
        start = time.perf_counter()
        while len(self.envs) < task.envs:
            self.envs.append(gym.make(self.env_id, **self.env_kwargs))
        quota, extra = divmod(task.steps, task.envs)
        lanes = [
            _Lane(self.envs[i], task, i, quota + (1 if i < extra else 0)) for i in range(task.envs)
        ]
        lanes = [lane for lane in lanes if lane.quota > 0]
        for lane in lanes:
            lane.begin_episode()
        while active := [lane for lane in lanes if not lane.full()]:
            # One forward pass for every lane still stepping: the policy's cost is shared.
            batch = np.stack([lane.obs for lane in active]).astype(np.float32)
            means = np.asarray(task.forward(batch), np.float64)
            for lane, mean in zip(active, means, strict=True):
                lane.step(mean)
        obs_array = np.concatenate([np.asarray(lane.obs_rows, np.float32) for lane in lanes])
        sampled = np.concatenate([np.asarray(lane.action_rows) for lane in lanes])
        means = np.concatenate([np.asarray(lane.means) for lane in lanes])
        tick = time.perf_counter()
        expert_actions = self._expert_act(obs_array) if task.expert_labels else None
        label_s = time.perf_counter() - tick
        return Segment(
            obs=obs_array,
            actions=sampled.astype(np.float32),
            # In one pass after the loop: the same numbers as per step (NumPy sums each row
            # alike), without the per-step calls.
            log_probs=gaussian_log_prob(sampled, means, task.std),
            rewards=np.concatenate([np.asarray(lane.rewards, np.float64) for lane in lanes]),
            terminated=np.concatenate([np.asarray(lane.terminated, bool) for lane in lanes]),
            truncated=np.concatenate([np.asarray(lane.truncated, bool) for lane in lanes]),
            final_obs=np.asarray(
                [o for lane in lanes for o in lane.final_obs], dtype=np.float32
            ).reshape(-1, obs_array.shape[1]),
            episodes=[e for lane in lanes for e in lane.episodes],
            expert_actions=expert_actions,
            wall_s=time.perf_counter() - start,
            sim_s=sum(lane.sim_s for lane in lanes),
            label_s=label_s,
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()


class _Lane:
    """One environment's share of a segment: its episodes one after another, each with its
    own random stream, until its quota of steps is taken."""

    def __init__(self, env: gym.Env, task: SegmentTask, index: int, quota: int) -> None:
        self.env, self.task, self.index, self.quota = env, task, index, quota
        self.act_dim = task.std.shape[0]
        self.dtype = env.action_space.dtype
        self.noise_scale = task.curriculum.action_noise * task.action_scale
        self.obs_rows: list[np.ndarray] = []
        self.action_rows: list[np.ndarray] = []
        self.means: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.terminated: list[bool] = []
        self.truncated: list[bool] = []
        self.final_obs: list[np.ndarray] = []
        self.episodes: list[dict[str, float]] = []
        self.episode, self.sim_s = 0, 0.0

    def full(self) -> bool:
        return len(self.obs_rows) >= self.quota

    def begin_episode(self) -> None:
        # Lane 0 keeps the stream a one-environment segment has always had.
        key = [self.task.seed, self.episode] + ([self.index] if self.index else [])
        self.rng = np.random.default_rng(np.random.SeedSequence(key))
        self.episode += 1
        self.options = _episode_options(self.task.curriculum, self.rng)
        seed = int(self.rng.integers(TRAINING_SEEDS_FROM, 2**31))
        tick = time.perf_counter()
        self.obs, _ = self.env.reset(seed=seed, options=self.options)
        self.sim_s += time.perf_counter() - tick
        self.ret, self.steps, self.pose = 0.0, 0, 0.0

    def step(self, mean: np.ndarray) -> None:
        """One control step from the policy's ``mean``; a new episode after a fall or cut."""
        action = mean + self.task.std * self.rng.standard_normal(self.act_dim)
        executed = action
        if self.task.curriculum.action_noise > 0:
            executed = action + self.noise_scale * self.rng.standard_normal(self.act_dim)
        self.obs_rows.append(self.obs)
        self.action_rows.append(action)
        self.means.append(mean)
        tick = time.perf_counter()
        obs, reward, fell, timed_out, info = self.env.step(executed.astype(self.dtype))
        self.sim_s += time.perf_counter() - tick
        self.obs = obs
        self.rewards.append(float(reward))
        self.ret += float(reward)
        self.steps += 1
        self.pose += float(info.get("reward_pose", math.nan))
        cut = timed_out or (self.full() and not fell)
        self.terminated.append(bool(fell))
        self.truncated.append(bool(cut))
        if cut:
            self.final_obs.append(obs)
        if fell or timed_out:
            self.episodes.append(
                {
                    "return": self.ret,
                    "steps": self.steps,
                    "fell": float(fell),
                    "survived_s": float(info.get("sim_time", math.nan)),
                    "pose_reward": self.pose / self.steps,
                    "push_impulse": float((self.options or {}).get("push", {}).get("impulse", 0.0)),
                }
            )
        if (fell or cut) and not self.full():
            self.begin_episode()


def _episode_options(curriculum: Curriculum, rng: np.random.Generator) -> dict[str, Any] | None:
    """This episode's reset options: a push drawn from the curriculum, or none."""
    if curriculum.push_probability <= 0 or rng.random() >= curriculum.push_probability:
        return None
    low, high = curriculum.push_impulse
    return {"push": {"impulse": float(rng.uniform(low, high)), "time": None}}
