"""Run one episode of a policy in an environment and summarise what happened."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from pipeline.policies import Policy
from pipeline.video import VideoWriter


@dataclass(frozen=True)
class EpisodeResult:
    """Per-episode metrics of one rollout."""

    seed: int
    """Seed passed to ``env.reset``."""
    steps: int
    """Control steps taken."""
    survived_s: float
    """Simulated seconds until the fall or the time limit."""
    fell: bool
    """Whether the episode ended in a fall (termination)."""
    distance: float
    """Forward distance of the root from its start, metres."""
    ret: float
    """Undiscounted return."""
    pose_reward: float | None
    """Mean pose-tracking reward per step (walk only)."""
    wall_s: float
    """Wall-clock seconds the episode took (including rendering when recording video)."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["return"] = d.pop("ret")
        return d


def run_episode(
    env: gym.Env,
    policy: Policy,
    seed: int,
    options: dict[str, Any] | None = None,
    video: Path | None = None,
) -> EpisodeResult:
    """Roll ``policy`` out for one episode from ``env.reset(seed=seed)``.

    With ``video``, every control step is rendered and streamed into that file. Actions
    are cast to the action space's dtype, as recording does, so a rollout and a recording
    of the same policy and seed follow the same trajectory.
    """
    start = time.perf_counter()
    dtype = env.action_space.dtype
    policy.reset(seed)
    obs, info = env.reset(seed=seed, options=options)
    writer = VideoWriter(video, fps=float(env.metadata.get("render_fps", 30))) if video else None
    steps, ret, pose_sum = 0, 0.0, 0.0
    terminated = truncated = False
    try:
        if writer:
            writer.append(env.render())
        while not (terminated or truncated):
            action = np.asarray(policy.act(obs)).astype(dtype)
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            ret += float(reward)
            pose_sum += float(info.get("reward_pose", math.nan))
            if writer:
                writer.append(env.render())
    finally:
        if writer:
            writer.close()
    pose = pose_sum / steps if steps and not math.isnan(pose_sum) else None
    return EpisodeResult(
        seed=seed,
        steps=steps,
        survived_s=float(info.get("sim_time", math.nan)),
        fell=bool(info.get("fell", terminated)),
        distance=float(info.get("distance", math.nan)),
        ret=ret,
        pose_reward=pose,
        wall_s=time.perf_counter() - start,
    )


def summarize(results: list[EpisodeResult]) -> dict[str, Any]:
    """Mean, standard deviation and 95% confidence half-width of each metric."""
    summary: dict[str, Any] = {"episodes": len(results), "steps": sum(r.steps for r in results)}
    summary["falls"] = sum(r.fell for r in results)
    summary["survival_rate"] = 1.0 - summary["falls"] / len(results) if results else math.nan
    for key in ("survived_s", "distance", "ret", "pose_reward"):
        values = np.array([getattr(r, key) for r in results if getattr(r, key) is not None], float)
        name = "return" if key == "ret" else key
        if values.size == 0:
            continue
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        summary[name] = {
            "mean": float(values.mean()),
            "std": std,
            "ci95": 1.96 * std / math.sqrt(values.size),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    wall = sum(r.wall_s for r in results)
    summary["steps_per_s_per_worker"] = summary["steps"] / wall if wall > 0 else math.nan
    return summary
