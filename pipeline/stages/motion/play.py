"""``pipeline motion play``: a learned motion kinematically beside the clip, and in physics
as open-loop PD targets next to closed-loop policies.

Open loop means the PD targets depend on time only: each control step the motion is read
at the clip phase the episode has reached (the observation's first entry, a clock, not
the humanoid's state). Feedback is what a closed-loop policy adds: the shipped expert
(and, if given, a trained policy) reads the whole state. The clip itself as open-loop
targets shows what a perfect fit of the motion would do.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.intervals import wilson_interval
from pipeline.core.outputs import check_output_dir
from pipeline.rollout.episodes import EpisodeResult
from pipeline.rollout.options import check_episode_seconds, env_kwargs, parse_start_phase
from pipeline.stages.motion.clip_data import interpolated, rmse_table
from pipeline.stages.motion.files import LoadedMotion, check_motion_path, clip_path, load_motion
from sim.mocap import MotionClip, joint_rotations, joint_vector, rotations_to_action

LEARNED = "learned motion, open loop"
CLIP = "clip, open loop"
EXPERT = "expert, closed loop"
POLICY = "policy, closed loop"


@dataclass
class PlayRequest:
    """What ``pipeline motion play`` runs."""

    motion: Path
    """A ``motion fit`` run directory or its ``model`` directory."""
    episodes: int = 10
    """Physics episodes per policy."""
    seed: int = 0
    """First episode seed (each seed draws a start phase when ``start_phase`` is random)."""
    start_phase: str = "random"
    """'random' or a phase in [0, 1)."""
    episode_seconds: float | None = None
    """Time limit of the physics episodes (None: the skill's)."""
    policy: Path | None = None
    """A trained closed-loop policy (``pipeline train`` directory) to run beside."""
    out: Path | None = None
    """Directory for the videos and ``play.json`` (new); None: no files."""
    video_cycles: float = 2.0
    """Clip cycles shown in the kinematic video."""
    workers: int = 2
    """Worker processes for the physics episodes."""


@dataclass
class PlayReport:
    """The comparison ``pipeline motion play`` prints."""

    skill: str
    env_id: str
    seeds: list[int]
    kinematic_rmse: dict[str, float]
    """Joint error (radians) of the learned motion against the clip, between key frames too."""
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per player: survival, seconds standing (mean, min, max), pose reward."""
    videos: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class OpenLoopMotion:
    """PD targets read off a motion at the episode's clip phase (a rollout policy)."""

    joints: Any
    """Phase -> joint vector: a learned motion's NumPy forward pass, or a clip."""
    cycle_time: float
    name: str = "motion"

    def reset(self, seed: int) -> None:
        del seed  # deterministic

    def act(self, obs: np.ndarray) -> np.ndarray:
        phase = float(obs[0])
        if isinstance(self.joints, MotionClip):
            vector = joint_vector(self.joints.pose_at(phase * self.cycle_time))
        else:
            vector = np.asarray(self.joints(np.array([[phase]], dtype=np.float32)))[0]
        return rotations_to_action(joint_rotations(vector))


def check_play_request(request: PlayRequest) -> None:
    """Every option, before anything loads (one line naming the option)."""
    check_motion_path(request.motion, "POLICY")
    if request.episodes < 1:
        raise PipelineError(f"--episodes: must be >= 1, got {request.episodes}")
    if request.workers < 1:
        raise PipelineError(f"--workers: must be >= 1, got {request.workers}")
    if not (math.isfinite(request.video_cycles) and request.video_cycles > 0):
        raise PipelineError(f"--video-cycles: {request.video_cycles} must be > 0")
    parse_start_phase(request.start_phase)
    if request.episode_seconds is not None:
        check_episode_seconds(request.episode_seconds)
    if request.policy is not None and not request.policy.exists():
        raise PipelineError(f"--policy {request.policy}: not found")
    if request.out is not None:
        check_output_dir(request.out, "--out")
        if request.out.exists() and any(request.out.iterdir()):
            raise PipelineError(f"--out {request.out}: already exists; choose another --out")


def _row(results: list[EpisodeResult]) -> dict[str, Any]:
    survived = sum(not r.fell for r in results)
    seconds = [r.survived_s for r in results]
    poses = [r.pose_reward for r in results if r.pose_reward is not None]
    return {
        "episodes": len(results), "survival_rate": survived / len(results),
        "survival_ci95": list(wilson_interval(survived, len(results))),
        "seconds_standing": float(np.mean(seconds)), "seconds_min": float(min(seconds)),
        "seconds_max": float(max(seconds)),
        "pose_reward": float(np.mean(poses)) if poses else math.nan,
    }  # fmt: skip


def play_motion(request: PlayRequest) -> PlayReport:
    """Run the comparison (and write the videos and ``play.json`` when ``request.out``)."""
    import sim
    from models.inference import NumpyForward
    from pipeline.rollout.policies import ExpertPolicy
    from pipeline.rollout.workers import EpisodeTask, run_episodes

    check_play_request(request)
    motion = load_motion(request.motion)
    spec = motion.spec
    clip = MotionClip.load(clip_path(spec.clip))
    kwargs = env_kwargs(spec.env_id, request.start_phase, request.episode_seconds)
    grid = interpolated(clip, 400)
    rmse = rmse_table(motion.joints_at(grid.phases), grid.targets)  # compiles the forward
    seeds = list(range(request.seed, request.seed + request.episodes))
    report = PlayReport(skill=spec.skill, env_id=spec.env_id, seeds=seeds, kinematic_rmse=rmse)
    learned = OpenLoopMotion(motion.forward, spec.cycle_time, name="learned motion")
    players: dict[str, tuple[Any, int]] = {
        LEARNED: (learned, request.workers if isinstance(motion.forward, NumpyForward) else 1),
        CLIP: (OpenLoopMotion(clip, spec.cycle_time, name="clip"), request.workers),
        EXPERT: (ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[spec.env_id])), request.workers),
    }
    if request.policy is not None:
        players[POLICY] = (_closed_loop_policy(request.policy, spec.env_id), request.workers)
    tasks = [EpisodeTask(seed) for seed in report.seeds]
    for name, (player, workers) in players.items():
        results = run_episodes(spec.env_id, kwargs, player, tasks, workers)
        report.rows[name] = _row(results)
    if request.out is not None:
        request.out.mkdir(parents=True, exist_ok=True)
        report.videos = _videos(motion, clip, request, kwargs, learned)
        (request.out / "play.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _closed_loop_policy(path: Path, env_id: str) -> Any:
    from pipeline.rollout.policies import LearnedPolicy
    from pipeline.rollout.policy_source import resolve_policy_source

    loaded = resolve_policy_source(str(path), None, "--policy").loaded
    if loaded.spec.env_id != env_id:
        raise PipelineError(f"--policy {path}: drives {loaded.spec.env_id}, the motion {env_id}")
    return LearnedPolicy.from_loaded(loaded)


def _videos(motion: LoadedMotion, clip: Any, request: PlayRequest, kwargs: dict[str, Any],
            learned: OpenLoopMotion) -> list[str]:  # fmt: skip
    """The learned motion beside the clip (kinematic), and the learned motion in physics."""
    import gymnasium as gym

    from pipeline.rollout.video import Filming, VideoWriter, side_by_side
    from pipeline.rollout.workers import EpisodeTask, run_episodes

    assert request.out is not None
    env = gym.make(motion.spec.env_id, render_mode="rgb_array")
    env.reset(seed=request.seed)  # the poses below replace its state; rendering needs a reset
    fps = float(env.metadata["render_fps"])
    frames = max(1, round(request.video_cycles * clip.cycle_time * fps))
    times = np.arange(frames) / fps
    vectors = motion.joints_at((times / clip.cycle_time) % 1.0)
    kinematic = request.out / "kinematic.mp4"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            left, right = Path(tmp) / "learned.mp4", Path(tmp) / "clip.mp4"
            with VideoWriter(left, fps) as lw, VideoWriter(right, fps) as rw:
                for t, vector in zip(times, vectors, strict=True):
                    pose = clip.pose_at(t)
                    env.unwrapped.show_pose(dataclasses.replace(
                        pose, joint_positions=joint_rotations(vector)))  # fmt: skip
                    lw.append(env.render())
                    env.unwrapped.show_pose(pose)
                    rw.append(env.render())
            side_by_side(left, right, kinematic, fps, ("learned motion", "captured clip"))
    finally:
        env.close()
    physics = request.out / "open_loop.mp4"
    text = f"learned motion as open-loop PD targets, seed {request.seed}"
    run_episodes(motion.spec.env_id, kwargs, learned,
                 [EpisodeTask(request.seed, video=Filming(str(physics), text))], 1)  # fmt: skip
    return [str(kinematic), str(physics)]
