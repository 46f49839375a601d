"""``pipeline rollout``: validate the request, run episodes with progress, report."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from rich.console import Console
from rich.table import Table

import sim
from pipeline.errors import PipelineError
from pipeline.filming import choose_video_episode, film_policy, first_fall_path, no_fall_line
from pipeline.outputs import check_output_path, make_parent, write_json
from pipeline.policies import check_policy_name, resolve_policy
from pipeline.progress import StageProgress
from pipeline.rollout import EpisodeResult, summarize
from pipeline.video import VIDEO_SUFFIXES
from pipeline.workers import EpisodeTask, run_episodes

WALK_ENV = "sim/HumanoidWalk-v0"


@dataclass(frozen=True)
class RolloutRequest:
    """Everything ``pipeline rollout`` was asked to do."""

    env_id: str
    """Registered environment id."""
    policy: str
    """'expert', 'random' or an expert name."""
    episodes: int
    """Number of episodes, >= 1."""
    seed: int
    """Episode i is reset with seed + i."""
    start_phase: str | None = None
    """Walk only: '0', 'random' or a float in [0, 1)."""
    episode_seconds: float | None = None
    """Walk only: time limit in simulated seconds."""
    workers: int = 1
    """Worker processes."""
    video: Path | None = None
    """Video of the first episode the policy survives (the first if it falls in all); when
    it fell anywhere also ``<stem>_first_fall<suffix>``, the seconds before its first fall."""
    json_path: Path | None = None
    """Metrics as JSON."""
    overwrite: bool = False
    """Replace an existing video or JSON file (refused otherwise)."""


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


def env_kwargs(
    env_id: str, start_phase: str | None = None, episode_seconds: float | None = None
) -> dict[str, Any]:
    """Validated constructor arguments for ``env_id`` (rendering on, walk options checked)."""
    if env_id not in sim.ENV_IDS:
        choices = ", ".join(sim.ENV_IDS)
        raise PipelineError(f"--env: unknown environment '{env_id}' (one of {choices})")
    kwargs: dict[str, Any] = {"render_mode": "rgb_array"}
    for option, value in (("--start-phase", start_phase),
                          ("--episode-seconds", episode_seconds)):  # fmt: skip
        if value is not None and env_id != WALK_ENV:
            raise PipelineError(f"{option}: applies only to {WALK_ENV}, not {env_id}")
    if start_phase is not None:
        kwargs["start_phase"] = parse_start_phase(start_phase)
    if episode_seconds is not None:
        kwargs["episode_seconds"] = check_episode_seconds(episode_seconds)
    return kwargs


def check_episode_seconds(value: float) -> float:
    """A walk episode's time limit: finite and > 0."""
    if not (math.isfinite(value) and value > 0):
        raise PipelineError(f"--episode-seconds: {value} must be > 0")
    return value


def env_kwargs_for(request: RolloutRequest) -> dict[str, Any]:
    """Validated constructor arguments for the environment of ``request``."""
    return env_kwargs(request.env_id, request.start_phase, request.episode_seconds)


def validate(request: RolloutRequest) -> dict[str, Any]:
    """Check every option before any work starts; returns the env kwargs."""
    kwargs = env_kwargs_for(request)
    check_policy_name(request.policy, request.env_id)
    check_episode_options(request.episodes, request.workers, request.video, request.json_path,
                          request.overwrite)  # fmt: skip
    return kwargs


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


def run_rollout_command(request: RolloutRequest, console: Console) -> list[EpisodeResult]:
    """Run ``pipeline rollout``: episodes with a progress bar, a table, optional JSON/video."""
    env_kwargs = validate(request)
    space_env = gym.make(request.env_id)
    try:
        low, high = space_env.action_space.low, space_env.action_space.high
    finally:
        space_env.close()
    policy = resolve_policy(request.policy, request.env_id, low, high)
    make_parent(request.video, "--video")
    tasks = [EpisodeTask(request.seed + i) for i in range(request.episodes)]
    falls = 0
    with StageProgress(console) as progress:
        bar = progress.add(f"rollout {request.env_id} / {request.policy}", total=len(tasks))

        def advance(result: EpisodeResult) -> None:
            nonlocal falls
            falls += result.fell
            progress.update(bar, advance=1, note=f"falls {falls}")

        results = run_episodes(request.env_id, env_kwargs, policy, tasks, request.workers, advance)
    summary = summarize(results)
    console.print(results_table(request, results, summary))
    filmed = []
    if request.video is not None:
        who = "random policy" if request.policy == "random" else "expert"
        choice = choose_video_episode(results, who)
        filmed = film_policy(request.env_id, env_kwargs, policy, who, results, choice,
                             request.video)  # fmt: skip
        for line in [f.line() for f in filmed] + ([] if falls else [no_fall_line(who)]):
            console.print(line)
    if request.json_path is not None:
        write_json(request.json_path, {
            "command": "rollout",
            "env_id": request.env_id,
            "env_kwargs": {k: v for k, v in env_kwargs.items() if k != "render_mode"},
            "policy": request.policy,
            "seed": request.seed,
            "workers": request.workers,
            "episodes": [r.to_dict() for r in results],
            "summary": summary,
            "video": str(request.video) if request.video else None,
            "filmed": [f.to_dict() for f in filmed],
        })  # fmt: skip
        console.print(f"json: {request.json_path}")
    return results


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def results_table(
    request: RolloutRequest, results: list[EpisodeResult], summary: dict[str, Any]
) -> Table:
    """Per-episode rows and a mean row."""
    table = Table(title=f"{request.env_id}, policy {request.policy}, {len(results)} episodes")
    for column in ("seed", "steps", "survived s", "fell", "distance m", "return", "pose reward"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        fell = "yes" if r.fell else "no"
        table.add_row(str(r.seed), str(r.steps), _fmt(r.survived_s), fell,
                      _fmt(r.distance), _fmt(r.ret, 1), _fmt(r.pose_reward, 3))  # fmt: skip

    def mean(key: str) -> float | None:
        return summary[key]["mean"] if key in summary else None

    table.add_section()
    table.add_row("mean", f"{summary['steps'] / len(results):.0f}", _fmt(mean("survived_s")),
                  f"{summary['falls']}/{len(results)}", _fmt(mean("distance")),
                  _fmt(mean("return"), 1), _fmt(mean("pose_reward"), 3))  # fmt: skip
    return table


def list_envs(console: Console, json_path: Path | None, overwrite: bool = False) -> None:
    """Print the registered environments with their spaces and experts."""
    if json_path is not None:
        check_output_path(json_path, "--json", (".json",), overwrite=overwrite)
    rows = []
    for env_id in sim.ENV_IDS:
        env = gym.make(env_id)
        try:
            rows.append({
                "env_id": env_id,
                "observation_dim": int(env.observation_space.shape[0]),
                "action_dim": int(env.action_space.shape[0]),
                "expert": sim.EXPERT_FOR_ENV.get(env_id),
            })  # fmt: skip
        finally:
            env.close()
    table = Table(title="environments")
    for column in ("env id", "observation", "action", "expert"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["env_id"], str(row["observation_dim"]), str(row["action_dim"]),
                      str(row["expert"]))  # fmt: skip
    console.print(table)
    if json_path is not None:
        write_json(json_path, {"command": "envs", "environments": rows})
        console.print(f"json: {json_path}")
