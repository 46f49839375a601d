"""Validated options of anything that runs episodes (rollout, record, evaluate, DAgger):
environment constructor arguments and the episode, worker and output options."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import sim
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_path
from pipeline.rollout.filming import first_fall_path
from pipeline.rollout.video import VIDEO_SUFFIXES


def is_motion_env(env_id: str) -> bool:
    """Whether ``env_id`` imitates a motion clip: start phase and episode length are
    options of these (:data:`sim.MOTION_ENV_IDS`), and they start at a random phase by
    default."""
    return env_id in sim.MOTION_ENV_IDS


def episode_step_limit(env_id: str, kwargs: dict[str, Any]) -> int:
    """The most actions an episode of ``env_id`` made with ``kwargs`` can take."""
    import gymnasium as gym

    env = gym.make(env_id, **kwargs)
    try:
        return int(env.unwrapped.step_limit)
    finally:
        env.close()


def parse_start_phase(value: str) -> float | str:
    """'random', or a phase in [0, 1)."""
    if value == "random":
        return "random"
    try:
        phase = float(value)
    except ValueError:
        raise PipelineError(
            f"--start-phase: '{value}' is not 'random' or a number in [0, 1)"
        ) from None
    if not 0.0 <= phase < 1.0:
        raise PipelineError(f"--start-phase: {value} is outside [0, 1)")
    return phase


def parse_push(value: str) -> dict[str, float | None]:
    """``IMPULSE[@TIME]`` (N*s, seconds) as the environments' ``push`` argument
    (:mod:`sim.push`); without a time, a random moment of the gait."""
    impulse_text, _, time_text = value.partition("@")
    try:
        impulse = float(impulse_text)
        time = float(time_text) if time_text else None
    except ValueError:
        raise PipelineError(
            f"--push {value}: not IMPULSE[@TIME] (N*s and seconds, e.g. 5 or 5@3.2)"
        ) from None
    if not (math.isfinite(impulse) and impulse >= 0):
        raise PipelineError(f"--push {value}: the impulse must be a number >= 0 (N*s)")
    if time is not None and not (math.isfinite(time) and time >= 0):
        raise PipelineError(f"--push {value}: the time must be a number >= 0 (seconds)")
    return {"impulse": impulse, "time": time}


def describe_push(push: dict[str, Any]) -> str:
    """One line saying how every episode was pushed."""
    when = (f"at {push['time']:g} s" if push.get("time") is not None
            else "at a random moment of the gait")  # fmt: skip
    return f"{push['impulse']:g} N*s lateral push on the torso {when}, random side, every episode"


def env_kwargs(
    env_id: str,
    start_phase: str | None = None,
    episode_seconds: float | None = None,
    push: str | None = None,
) -> dict[str, Any]:
    """Validated constructor arguments for ``env_id`` (rendering on, walk options checked,
    ``push`` parsed)."""
    if env_id not in sim.ENV_IDS:
        choices = ", ".join(sim.ENV_IDS)
        raise PipelineError(f"--env: unknown environment '{env_id}' (one of {choices})")
    kwargs: dict[str, Any] = {"render_mode": "rgb_array"}
    if start_phase is not None:
        if not is_motion_env(env_id):
            raise PipelineError(
                f"--start-phase: applies only to the motion-imitation environments "
                f"({', '.join(sim.MOTION_ENV_IDS)}), not {env_id}"
            )
        kwargs["start_phase"] = parse_start_phase(start_phase)
    if episode_seconds is not None:
        kwargs["episode_seconds"] = check_episode_seconds(episode_seconds)
    if push is not None:
        kwargs["push"] = parse_push(push)
    return kwargs


MAX_CAMERA_SIDE = 320
"""Largest camera side, pixels: the tiny renderer takes 16-29 ms for a 320x240 frame,
about ten times a simulation step (DESIGN.md); 84x84 takes 2-3.6 ms."""
MIN_CAMERA_SIDE = 8


def parse_camera(value: str) -> tuple[int, int]:
    """``--camera WxH`` as (width, height), each side 8-320 pixels."""
    width, sep, height = value.strip().lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit()):
        raise PipelineError(f"--camera: '{value}' is not WIDTHxHEIGHT, e.g. 84x84")
    size = (int(width), int(height))
    if not all(MIN_CAMERA_SIDE <= side <= MAX_CAMERA_SIDE for side in size):
        raise PipelineError(f"--camera: {value} is out of range; each side must be "
                            f"{MIN_CAMERA_SIDE}-{MAX_CAMERA_SIDE} pixels")  # fmt: skip
    return size


def check_episode_seconds(value: float) -> float:
    """An episode's time limit in simulated seconds: finite and > 0."""
    if not (math.isfinite(value) and value > 0):
        raise PipelineError(f"--episode-seconds: {value} must be > 0")
    return value


def check_episode_options(
    episodes: int,
    workers: int,
    video: Path | None,
    json_path: Path | None,
    overwrite: bool = False,
) -> None:
    """The options every command that runs episodes shares (rollout, evaluate)."""
    if episodes < 1:
        raise PipelineError(f"--episodes: must be >= 1, got {episodes}")
    if workers < 1:
        raise PipelineError(f"--workers: must be >= 1, got {workers}")
    if video is not None:
        check_output_path(video, "--video", VIDEO_SUFFIXES, overwrite=overwrite)
        # Written beside it only if the policy falls, but checked now like the video.
        check_output_path(first_fall_path(video), "--video", overwrite=overwrite)
    if json_path is not None:
        check_output_path(json_path, "--json", (".json",), overwrite=overwrite)
