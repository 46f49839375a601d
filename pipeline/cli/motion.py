"""``pipeline motion fit`` and ``pipeline motion play``: the course's motion-imitation lab."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli.options import (
    EpisodeSeconds,
    EpisodeSeed,
    JsonOut,
    NoTrack,
    Overwrite,
    TrackingUri,
    Workers,
)
from pipeline.cli.progress import make_console
from pipeline.cli.show_config import ShowConfig, print_configs
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_path, write_json

motion_app = typer.Typer(
    help="The motion-imitation lab: learn a clip, then play it.\n\nLearn a clip as phase -> "
    "joint angles, then play it kinematically and in physics (open loop) beside closed-loop "
    "policies.",
    no_args_is_help=True,
)


def _clip_option(clip: Path | None) -> None:
    """``--clip``: checked (readable, well-formed) before anything else runs."""
    if clip is None:
        return
    from sim import AssetError
    from sim.mocap import MotionClip

    try:
        MotionClip.load(clip)
    except AssetError as exc:
        raise PipelineError(f"--clip {exc}") from None


@motion_app.command("fit")
def fit_command(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Config overrides key=value, e.g. net.activation=tanh steps=5000."),
    ] = None,
    skill: Annotated[
        str | None, typer.Option(help="Skill whose clip to learn: walk, backflip or jump.")
    ] = None,
    clip: Annotated[
        Path | None,
        typer.Option(help="A clip file (DeepMimic format) to learn instead of the skill's own."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config of the fit.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the initial weights.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/motion-<skill>-...).")
    ] = None,
    no_track: NoTrack = False,
    tracking_uri: TrackingUri = None,
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
    show_config: ShowConfig = False,
) -> None:
    """Learn a skill's clip as phase -> joint angles.

    Dense 75-50, leaky ReLU, Adam, full batch, as in the course's lab; per-joint error,
    plots and the model, in MLflow.
    """
    from pipeline.stages.motion.config import load_motion_config
    from pipeline.stages.motion.fit import check_fit_out, fit_motion
    from sim.skills import SKILLS

    if skill is not None and skill not in SKILLS:
        raise PipelineError(f"--skill {skill}: unknown skill; choose one of {', '.join(SKILLS)}")
    extra = list(overrides or [])
    for key, value in (("skill", skill), ("seed", seed), ("clip", clip)):
        if value is not None:
            extra.append(f"{key}={value}")
    cfg = load_motion_config(config, extra)
    _clip_option(clip)
    if show_config:
        print_configs(make_console(), {"pipeline motion fit": cfg})
        return
    out = out or Path("runs") / (
        f"motion-{cfg.skill}-seed{cfg.seed}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    check_fit_out(out)
    if json_out is not None:
        check_output_path(json_out, "--json", (".json",), overwrite=overwrite)
    uri = None
    if not no_track:
        from pipeline.tracking import prepare

        uri = prepare(tracking_uri, cfg.tracking.experiment)
    console = make_console()
    with console.status(f"fitting the {cfg.skill} clip ({cfg.steps} full-batch steps)"):
        result = fit_motion(cfg, out, uri)
    _print_fit(console, result)
    if json_out is not None:
        write_json(json_out, {"command": "motion fit", **result.to_dict()})
        console.print(f"json: {json_out}")


def _print_fit(console: Console, result: Any) -> None:
    from pipeline.stages.motion.clip_data import JOINT_GROUPS

    table = Table(title=f"motion fit: {result.skill}, {result.samples} poses, {result.steps} steps")
    table.add_column("joints")
    table.add_column("RMSE rad", justify="right")
    table.add_column("RMSE deg", justify="right")
    for key in (*JOINT_GROUPS, "all"):
        rad = result.rmse[key]
        table.add_row(key, f"{rad:.4f}", f"{rad * 57.29578:.2f}")
    console.print(table)
    console.print(f"fit {result.fit_s:.1f} s; final loss {result.final_loss:.2e}; RMSE at the "
                  f"training poses {result.rmse_at_samples:.4f} rad")  # fmt: skip
    console.print(f"motion: {result.model_dir}")
    for plot in result.plots:
        console.print(f"plot: {plot}")
    if result.run_id:
        console.print(f"mlflow run: {result.run_id}")


@motion_app.command("play")
def play_command(
    motion: Annotated[Path, typer.Argument(help="A `motion fit` run directory (or its model).")],
    episodes: Annotated[int, typer.Option(help="Physics episodes per player.")] = 10,
    seed: EpisodeSeed = 0,
    start_phase: Annotated[
        str, typer.Option(help="'random' (a phase per seed) or a phase in [0, 1).")
    ] = "random",
    episode_seconds: EpisodeSeconds = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="A trained closed-loop policy (pipeline train run) to play beside."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the videos and play.json into this new directory.")
    ] = None,
    video_cycles: Annotated[float, typer.Option(help="Clip cycles in the kinematic video.")] = 2.0,
    workers: Workers = 2,
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
) -> None:
    """Replay a learned motion, kinematically and in physics.

    Kinematically beside the clip (a video), and in physics as open-loop PD targets next to
    the clip's own targets and closed-loop policies.
    """
    from pipeline.stages.motion.play import PlayRequest, check_play_request, play_motion

    request = PlayRequest(motion=motion, episodes=episodes, seed=seed, start_phase=start_phase,
                          episode_seconds=episode_seconds, policy=policy, out=out,
                          video_cycles=video_cycles, workers=workers)  # fmt: skip
    check_play_request(request)
    if json_out is not None:
        check_output_path(json_out, "--json", (".json",), overwrite=overwrite)
    console = make_console()
    with console.status("playing"):
        report = play_motion(request)
    table = Table(title=f"{report.skill}: {len(report.seeds)} episodes, seeds "
                        f"{report.seeds[0]}-{report.seeds[-1]}")  # fmt: skip
    for column in ("player", "survival [95% CI]", "seconds standing (min-max)", "pose reward"):
        table.add_column(column)
    for name, row in report.rows.items():
        low, high = row["survival_ci95"]
        table.add_row(name, f"{100 * row['survival_rate']:.0f}% [{100 * low:.0f}-{100 * high:.0f}]",
                      f"{row['seconds_standing']:.2f} ({row['seconds_min']:.2f}-"
                      f"{row['seconds_max']:.2f})", f"{row['pose_reward']:.3f}")  # fmt: skip
    console.print(table)
    console.print(f"kinematic fit: RMSE {report.kinematic_rmse['all']:.4f} rad over all joints")
    for video in report.videos:
        console.print(f"video: {video}")
    if json_out is not None:
        write_json(json_out, {"command": "motion play", **report.to_dict()})
        console.print(f"json: {json_out}")
