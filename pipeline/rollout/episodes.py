"""Run one episode of a policy in an environment and summarise what happened."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from pipeline.core.intervals import mean_half_width, wilson_interval
from pipeline.rollout.policies import Policy
from pipeline.rollout.video import Filming, VideoWriter


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
    """Mean pose-tracking reward per step (motion-imitation envs only)."""
    wall_s: float
    """Wall-clock seconds the episode took (including rendering when recording video)."""
    action_error: float | None = None
    """Mean over steps of the squared error to the relabelling expert's action, in the
    policy's normalized action units (None without a relabeller)."""
    action_error_by_second: tuple[float, ...] | None = None
    """The same error averaged within each simulated second: growth over the episode is
    compounding error."""
    actions: np.ndarray | None = field(default=None, repr=False, compare=False)
    """(steps, act_dim) actions taken, when the episode was traced."""
    start_phase: float | None = None
    """Phase of the gait cycle the episode started from (motion-imitation envs), in [0, 1)."""

    @property
    def speed(self) -> float:
        """Mean forward speed, m/s."""
        return self.distance / self.survived_s if self.survived_s > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("actions")
        d["return"] = d.pop("ret")
        d["speed"] = self.speed
        if self.action_error_by_second is not None:
            d["action_error_by_second"] = list(self.action_error_by_second)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeResult:
        """The episode :meth:`to_dict` wrote (an ``evaluation.json`` row); no actions."""
        fields = {k: v for k, v in data.items() if k not in ("return", "speed", "actions")}
        by_second = fields.get("action_error_by_second")
        if by_second is not None:
            fields["action_error_by_second"] = tuple(by_second)
        return cls(ret=data["return"], **fields)


def policy_frame(env: gym.Env, camera: Any) -> np.ndarray | None:
    """The frame an image policy sees of the env's current state (``camera``: its
    ``CameraSpec``), or None for a policy without a camera."""
    if camera is None:
        return None
    return env.unwrapped.camera_frame(camera.width, camera.height, camera.view)  # type: ignore[attr-defined]


def beside(view: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
    """The video frame ``view`` with the policy's own ``frame`` to its right, scaled up by
    whole pixels (nearest neighbour) to at most the view's height; ``view`` alone without."""
    if frame is None:
        return view
    scale = max(1, view.shape[0] // frame.shape[0])
    big = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
    # An even width keeps H.264's yuv420p happy (``VideoWriter``) without a resize.
    panel = np.zeros((view.shape[0], big.shape[1] + big.shape[1] % 2, 3), dtype=view.dtype)
    big = big[: view.shape[0]]
    top = (view.shape[0] - big.shape[0]) // 2
    panel[top : top + big.shape[0]] = big
    return np.concatenate([view, panel], axis=1)


Relabeller = Callable[[np.ndarray, np.ndarray], float]
"""``(observation, action taken) -> error`` of that action against a reference policy."""


def _per_second(errors: list[float], steps: int, seconds: float) -> tuple[float, ...]:
    if not errors or not seconds > 0:
        return ()
    second = (np.arange(len(errors)) * (seconds / steps)).astype(int)
    values = np.asarray(errors)
    return tuple(float(values[second == s].mean()) for s in range(int(second[-1]) + 1))


def run_episode(
    env: gym.Env,
    policy: Policy,
    seed: int,
    options: dict[str, Any] | None = None,
    video: Filming | None = None,
    relabel: Relabeller | None = None,
    trace: bool = False,
) -> EpisodeResult:
    """Roll ``policy`` out for one episode from ``env.reset(seed=seed)``.

    With ``video``, the state after every control step from ``video.from_step`` on (0: from
    the reset) is rendered and streamed into ``video.path``. Actions are cast to the action
    space's dtype, as recording does, so a rollout and a recording of the same policy and
    seed follow the same trajectory. ``relabel`` scores every action
    on the state it was taken in (an expert relabelling the learner's states); ``trace``
    keeps the actions.
    """
    start = time.perf_counter()
    dtype = env.action_space.dtype
    camera = getattr(policy, "camera", None)
    policy.reset(seed)
    obs, info = env.reset(seed=seed, options=options)
    start_phase = info.get("phase")
    fps = float(env.metadata.get("render_fps", 30))
    writer = VideoWriter(video.path, fps, video.caption) if video else None
    from_step = video.from_step if video else 0
    steps, ret, pose_sum = 0, 0.0, 0.0
    errors: list[float] = []
    taken: list[np.ndarray] = []
    terminated = truncated = False
    # An image policy sees the camera frame of each state, rendered once and also shown
    # beside the video's own view.
    frame = policy_frame(env, camera)
    try:
        if writer and from_step == 0:
            writer.append(beside(env.render(), frame))
        while not (terminated or truncated):
            if frame is None:
                action = np.asarray(policy.act(obs)).astype(dtype)
            else:
                action = np.asarray(policy.act(obs, frame)).astype(dtype)  # type: ignore[call-arg]
            if relabel is not None:
                errors.append(relabel(obs, action))
            if trace:
                taken.append(action)
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            ret += float(reward)
            pose_sum += float(info.get("reward_pose", math.nan))
            if camera is not None and (writer or not (terminated or truncated)):
                frame = policy_frame(env, camera)
            if writer and steps >= from_step:
                writer.append(beside(env.render(), frame))
    finally:
        if writer:
            writer.close()
    pose = pose_sum / steps if steps and not math.isnan(pose_sum) else None
    survived = float(info.get("sim_time", math.nan))
    return EpisodeResult(
        seed=seed,
        steps=steps,
        survived_s=survived,
        fell=bool(info.get("fell", terminated)),
        distance=float(info.get("distance", math.nan)),
        ret=ret,
        pose_reward=pose,
        wall_s=time.perf_counter() - start,
        action_error=float(np.mean(errors)) if errors else None,
        action_error_by_second=_per_second(errors, steps, survived) if relabel else None,
        actions=np.asarray(taken) if trace else None,
        start_phase=None if start_phase is None else float(start_phase),
    )


def summarize(results: list[EpisodeResult]) -> dict[str, Any]:
    """Mean, standard deviation and 95% confidence half-width (t) of each metric; the
    survival rate's 95% Wilson interval."""
    summary: dict[str, Any] = {"episodes": len(results), "steps": sum(r.steps for r in results)}
    summary["falls"] = sum(r.fell for r in results)
    summary["survival_rate"] = 1.0 - summary["falls"] / len(results) if results else math.nan
    summary["survival_ci95"] = wilson_interval(len(results) - summary["falls"], len(results))
    for key in ("survived_s", "distance", "speed", "ret", "pose_reward", "action_error"):
        values = np.array([getattr(r, key) for r in results if getattr(r, key) is not None], float)
        values = values[np.isfinite(values)]
        name = "return" if key == "ret" else key
        if values.size == 0:
            continue
        summary[name] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            # Student's t: NaN for a single episode, whose spread is unknown.
            "ci95": mean_half_width(values),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    wall = sum(r.wall_s for r in results)
    curves = [r.action_error_by_second for r in results if r.action_error_by_second]
    if curves:
        # Mean over the episodes still running in each second (fallen ones drop out).
        longest = max(len(c) for c in curves)
        summary["action_error_by_second"] = [
            float(np.mean([c[s] for c in curves if len(c) > s])) for s in range(longest)
        ]
        summary["episodes_by_second"] = [sum(len(c) > s for c in curves) for s in range(longest)]
    summary["steps_per_s_per_worker"] = summary["steps"] / wall if wall > 0 else math.nan
    return summary
