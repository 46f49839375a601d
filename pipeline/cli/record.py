"""``pipeline record`` and ``pipeline inspect``: validation, progress and reports."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli.options import (
    BackendKind,
    EpisodeSeconds,
    JsonOut,
    RayAddress,
    Workers,
    from_command_line,
)
from pipeline.cli.progress import StageProgress, make_console
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import OVERWRITE_HINT, check_output_path, make_parent, write_json

if TYPE_CHECKING:
    from datasets import Episode
    from pipeline.stages.record import RecordConfig, RecordSummary


def validate_config(config: RecordConfig) -> None:
    """Check every option before any work starts."""
    from datasets import Compression, validate
    from datasets.store.checks import location_problem
    from pipeline.rollout.options import env_kwargs, parse_camera
    from pipeline.rollout.policies import check_policy_name
    from sim.camera import VIEW_YAWS

    if config.mode != "resume":
        env_kwargs(config.env_id, config.start_phase, config.episode_seconds)
        check_policy_name(config.expert, config.env_id)
    if config.episodes < 1:
        raise PipelineError(f"--episodes: must be >= 1, got {config.episodes}")
    if config.camera is not None:
        parse_camera(config.camera)
    if config.camera_view not in VIEW_YAWS:
        raise PipelineError(f"--camera-view: '{config.camera_view}' is not one of "
                            f"{', '.join(VIEW_YAWS)}")  # fmt: skip
    if config.workers < 1:
        raise PipelineError(f"--workers: must be >= 1, got {config.workers}")
    if not (math.isfinite(config.noise) and config.noise >= 0):
        raise PipelineError(f"--noise: must be a finite number >= 0, got {config.noise}")
    if config.max_attempts is not None and config.max_attempts < 1:
        raise PipelineError(f"--max-attempts: must be >= 1, got {config.max_attempts}")
    try:
        if config.compression is not None:
            Compression.parse(config.compression)
    except ValueError as exc:
        raise PipelineError(f"--compression: {exc}") from None
    out = config.out
    if config.mode not in ("append", "resume"):
        check_output_path(out, "--out", overwrite=config.mode == "overwrite",
                          hint="use --append, --resume or --overwrite")  # fmt: skip
        return
    if not out.exists():
        raise PipelineError(f"--{config.mode} {out}: file does not exist")
    problem = location_problem(out)  # its journal is written beside it
    if problem:
        raise PipelineError(f"--out {out}: {problem}")
    validate(out)


def check_json_path(config: RecordConfig, json_path: Path) -> None:
    """The summary file: new, or replaced with --overwrite (which excludes the other modes)."""
    hint = OVERWRITE_HINT
    if config.mode in ("append", "resume"):
        hint = f"name a new file: --overwrite cannot go with --{config.mode}"
    check_output_path(json_path, "--json", (".json",), overwrite=config.mode == "overwrite",
                      hint=hint)  # fmt: skip


def run_record_command(
    config: RecordConfig, given: set[str], json_path: Path | None, console: Console
) -> RecordSummary:
    """Run ``pipeline record`` with a progress bar and print a summary table."""
    from pipeline.rollout.cluster import cluster_session
    from pipeline.stages.record import record

    validate_config(config)
    if json_path is not None:
        check_json_path(config, json_path)
    make_parent(config.out, "--out")
    with StageProgress(console) as progress:
        bar = progress.add("record episodes", total=None)
        kept_falls = 0

        def advance(summary: RecordSummary, episode: Episode) -> None:
            nonlocal kept_falls
            kept_falls += bool(episode.fell and config.keep_failed)
            rate = summary.steps / max(progress.elapsed(bar), 1e-9)
            progress.update(
                bar,
                completed=summary.committed,
                total=summary.target_episodes - summary.start_episodes or None,
                note=f"{progress_note(summary, kept_falls)}, {rate:.0f} steps/s",
            )

        with cluster_session(config.backend):
            summary = record(config, given, advance)
    console.print(summary_table(summary))
    console.print(f"dataset: {summary.path}")
    if summary.interrupted:
        console.print(f"interrupted: continue with 'pipeline record --out {summary.path} --resume'")
    if json_path is not None:
        write_json(json_path, {"command": "record", **asdict(summary),
                               "episodes_per_s": summary.episodes_per_s,
                               "steps_per_s": summary.steps_per_s})  # fmt: skip
        console.print(f"json: {json_path}")
    return summary


def progress_note(summary: RecordSummary, kept_falls: int = 0) -> str:
    """What a recording's progress counts beside ``kept/target``: the attempts dropped
    because the expert fell (or, with --keep-failed, the kept episodes in which it fell) and
    those rejected for non-finite values: ``kept, 6 dropped (the expert fell)``."""
    if kept_falls:
        note = f"kept ({kept_falls} in which the expert fell)"
    else:
        note = f"kept, {summary.dropped_fell} dropped (the expert fell)"
    if summary.rejected:
        note += f", {summary.rejected} rejected (non-finite values)"
    return note


def summary_table(s: RecordSummary) -> Table:
    table = Table(title=f"recorded {s.config.get('env_id')} with {s.config.get('expert_id')}")
    table.add_column("", justify="left")
    table.add_column("value", justify="right")
    rows = [
        ("episodes committed (this run)", str(s.committed)),
        ("episodes in file / target", f"{s.total_episodes} / {s.target_episodes}"),
        ("attempts run", str(s.attempts)),
        ("dropped: expert fell", str(s.dropped_fell)),
        ("rejected: non-finite values", str(s.rejected)),
        ("steps committed", str(s.steps)),
        ("episodes/s", f"{s.episodes_per_s:.2f}"),
        ("steps/s", f"{s.steps_per_s:.0f}"),
        ("file size", f"{s.file_bytes / 1e6:.1f} MB"),
        ("next attempt", str(s.next_attempt)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def record_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Demonstration file (.h5) to write.")],
    env: Annotated[str, typer.Option(help="Environment id.")] = "sim/HumanoidWalk-v0",
    expert: Annotated[
        str, typer.Option(help="'expert' (the env's shipped expert) or an expert name.")
    ] = "expert",
    episodes: Annotated[
        int, typer.Option(help="Episodes to add (with --resume: ignored, the file's target).")
    ] = 50,
    seed: Annotated[
        int, typer.Option(help="Base seed: attempt n uses a seed derived from (seed, n).")
    ] = 0,
    workers: Workers = 1,
    backend: BackendKind = "local",
    ray_address: RayAddress = None,
    start_phase: Annotated[
        str | None,
        typer.Option(
            help="Motion envs only: 'random' (diverse demos), '0' or a phase in [0, 1).",
            show_default="random",
        ),
    ] = None,
    episode_seconds: EpisodeSeconds = None,
    camera: Annotated[
        str | None,
        typer.Option(
            metavar="WxH",
            help="Also store a camera frame of every state (uint8, one compressed chunk per "
            "frame), e.g. 84x84; each side 8-320 pixels.",
        ),
    ] = None,
    camera_view: Annotated[
        str, typer.Option(help="With --camera: 'follow' (behind the character) or 'side'.")
    ] = "follow",
    noise: Annotated[
        float, typer.Option(help="DART noise on executed actions, in expert action scales.")
    ] = 0.0,
    keep_failed: Annotated[
        bool,
        typer.Option("--keep-failed/--drop-failed", help="Keep episodes where the expert fell."),
    ] = False,
    append: Annotated[bool, typer.Option(help="Add episodes to a compatible file.")] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing --out file (and --json file).")
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted recording at its next attempt.")
    ] = False,
    compression: Annotated[
        str | None,
        typer.Option(
            help="gzip[:level] (level 4 unless given), lzf or none: of the episodes "
            "this command writes (arrays under 16 KiB stay uncompressed).",
            show_default="gzip; --append: the file's; --resume: as before",
        ),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(help="Give up after this many attempts.", show_default="10 x episodes + 10"),
    ] = None,
    json_out: JsonOut = None,
) -> None:
    """Record expert demonstrations into a crash-safe HDF5 file."""
    from pipeline.rollout.cluster import parse_backend
    from pipeline.stages.record import RecordConfig

    modes = [name for name, on in (("append", append), ("overwrite", overwrite),
                                   ("resume", resume)) if on]  # fmt: skip
    if len(modes) > 1:
        raise PipelineError(f"--{modes[0]} and --{modes[1]} exclude each other")
    explicit = {"env_id": env, "expert": expert, "seed": seed, "noise": noise,
                "start_phase": start_phase, "episode_seconds": episode_seconds,
                "keep_failed": keep_failed, "camera": camera,
                "camera_view": camera_view, "compression": compression}  # fmt: skip
    # With --resume the file supplies what the command line leaves at its default.
    options = {"env_id": "env"}
    given = {k for k, v in explicit.items()
             if v is not None and from_command_line(ctx, options.get(k, k))}  # fmt: skip
    config = RecordConfig(
        out=out,
        episodes=episodes,
        workers=workers,
        backend=parse_backend(backend, ray_address),
        mode=modes[0] if modes else "create",  # type: ignore[arg-type]
        max_attempts=max_attempts,
        **{k: v for k, v in explicit.items() if v is not None},
    )
    run_record_command(config, given, json_out, make_console())
