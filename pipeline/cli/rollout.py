"""``pipeline rollout``: validate the request, run episodes with progress, report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from pipeline.cli.options import (
    ActionNoiseOption,
    BackendKind,
    EpisodeSeconds,
    EpisodeSeed,
    JsonOut,
    Overwrite,
    RayAddress,
    Workers,
)
from pipeline.cli.progress import StageProgress, make_console
from pipeline.core.outputs import make_parent, write_json
from pipeline.rollout.cluster import LOCAL, Backend

if TYPE_CHECKING:
    from pipeline.rollout.episodes import EpisodeResult


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
    """Motion envs only: '0', 'random' or a float in [0, 1)."""
    episode_seconds: float | None = None
    """Motion envs only: time limit in simulated seconds."""
    workers: int = 1
    """Worker processes."""
    backend: Backend = LOCAL
    """Where the workers run: local processes or Ray actors (the episodes are the same)."""
    video: Path | None = None
    """Video of the first episode the policy survives (the first if it falls in all); when
    it fell anywhere also ``<stem>_first_fall<suffix>``, the seconds before its first fall."""
    json_path: Path | None = None
    """Metrics as JSON."""
    overwrite: bool = False
    """Replace an existing video or JSON file (refused otherwise)."""
    action_noise: float = 0.0
    """Gaussian noise of this many of the expert's action scales on every executed action
    (an expert's only), drawn from each episode's seed: how reproducible is its walk?"""


def env_kwargs_for(request: RolloutRequest) -> dict[str, Any]:
    """Validated constructor arguments for the environment of ``request``."""
    from pipeline.rollout.options import env_kwargs

    return env_kwargs(request.env_id, request.start_phase, request.episode_seconds)


def validate(request: RolloutRequest) -> dict[str, Any]:
    """Check every option before any work starts; returns the env kwargs."""
    from pipeline.core.errors import PipelineError
    from pipeline.rollout.action_noise import check_action_noise
    from pipeline.rollout.options import check_episode_options
    from pipeline.rollout.policies import check_policy_name

    kwargs = env_kwargs_for(request)
    check_policy_name(request.policy, request.env_id)
    if check_action_noise(request.action_noise) > 0 and request.policy == "random":
        raise PipelineError("--action-noise: perturbs an expert's actions, not the random policy's")
    check_episode_options(request.episodes, request.workers, request.video, request.json_path,
                          request.overwrite)  # fmt: skip
    return kwargs


def run_rollout_command(request: RolloutRequest, console: Console) -> list[EpisodeResult]:
    """Run ``pipeline rollout``: episodes with a progress bar, a table, optional JSON/video."""
    import gymnasium as gym

    from pipeline.reports.tables import episode_table
    from pipeline.rollout.action_noise import ActionNoise, NoisyPolicy, describe_action_noise
    from pipeline.rollout.cluster import cluster_session
    from pipeline.rollout.episodes import summarize
    from pipeline.rollout.filming import choose_video_episode, film_policy, no_fall_line
    from pipeline.rollout.policies import resolve_policy
    from pipeline.rollout.workers import EpisodeTask, run_episodes

    env_kwargs = validate(request)
    space_env = gym.make(request.env_id)
    try:
        low, high = space_env.action_space.low, space_env.action_space.high
    finally:
        space_env.close()
    policy = resolve_policy(request.policy, request.env_id, low, high)
    if request.action_noise > 0:
        policy = NoisyPolicy(policy, ActionNoise(request.action_noise, policy.expert.action_scale))
    make_parent(request.video, "--video")
    tasks = [EpisodeTask(request.seed + i) for i in range(request.episodes)]
    falls = 0
    with StageProgress(console) as progress:
        bar = progress.add(f"rollout {request.env_id} / {request.policy}", total=len(tasks))

        def advance(result: EpisodeResult) -> None:
            nonlocal falls
            falls += result.fell
            progress.update(bar, advance=1, note=f"falls {falls}")

        with cluster_session(request.backend):
            results = run_episodes(request.env_id, env_kwargs, policy, tasks, request.workers,
                                   advance, backend=request.backend)  # fmt: skip
    summary = summarize(results)
    console.print(episode_table(f"{request.env_id}, policy {request.policy}", results, summary))
    if request.action_noise > 0:
        console.print(f"perturbed: {describe_action_noise(request.action_noise, 'the expert')}")
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
            "action_noise": request.action_noise,
            "seed": request.seed,
            "workers": request.workers,
            "episodes": [r.to_dict() for r in results],
            "summary": summary,
            "video": str(request.video) if request.video else None,
            "filmed": [f.to_dict() for f in filmed],
        })  # fmt: skip
        console.print(f"json: {request.json_path}")
    return results


def rollout_command(
    env: Annotated[str, typer.Option(help="Environment id, e.g. sim/HumanoidWalk-v0.")] = (
        "sim/HumanoidWalk-v0"
    ),
    policy: Annotated[
        str, typer.Option(help="'expert' (the env's shipped expert), 'random' or an expert name.")
    ] = "expert",
    episodes: Annotated[int, typer.Option(help="Number of episodes (>= 1).")] = 5,
    seed: EpisodeSeed = 0,
    start_phase: Annotated[
        str | None,
        typer.Option(help="Motion envs only: '0' (default), 'random', or a phase in [0, 1)."),
    ] = None,
    episode_seconds: EpisodeSeconds = None,
    action_noise: ActionNoiseOption = 0.0,
    workers: Workers = 1,
    backend: BackendKind = "local",
    ray_address: RayAddress = None,
    video: Annotated[
        Path | None,
        typer.Option(
            help="Video (.mp4/.gif) of the first episode the policy survives; when it fell "
            "anywhere also <name>_first_fall: the last 3 s before its first fall."
        ),
    ] = None,
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
) -> None:
    """Roll a policy out in the simulation and report how it walks.

    Per episode: steps, seconds survived, fall, distance, return and pose reward; --json
    also keeps them per episode.
    """
    from pipeline.rollout.cluster import parse_backend

    request = RolloutRequest(
        env_id=env,
        policy=policy,
        episodes=episodes,
        seed=seed,
        start_phase=start_phase,
        episode_seconds=episode_seconds,
        action_noise=action_noise,
        workers=workers,
        backend=parse_backend(backend, ray_address),
        video=video,
        json_path=json_out,
        overwrite=overwrite,
    )
    run_rollout_command(request, make_console())
