"""``pipeline inspect``, ``export`` and ``import``: look into a demonstration file and move it
to and from another format (Minari)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli.options import JsonOut, Overwrite
from pipeline.cli.progress import make_console
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_path, write_json
from pipeline.reports.dataset_summary import dataset_rows

if TYPE_CHECKING:
    pass


def run_inspect_command(
    path: Path,
    verify: bool,
    json_path: Path | None,
    console: Console,
    overwrite: bool = False,
    contact_sheet: Path | None = None,
    replay: bool = False,
    replay_episodes: int | None = None,
) -> int:
    """Print what a demonstration file holds; with ``verify``, re-hash every episode; with
    ``contact_sheet``, write a PNG of its camera frames; with ``replay``, re-simulate the
    first ``replay_episodes`` episodes (all with None) and report how far they drift.

    Returns 1 when verification finds a bad episode, else 0.
    """
    from datasets import open_dataset, validate
    from pipeline.reports.contact_sheet import write_contact_sheet

    if json_path is not None:
        check_output_path(json_path, "--json", (".json",), overwrite=overwrite)
    if contact_sheet is not None:
        check_output_path(contact_sheet, "--contact-sheet", (".png",), overwrite=overwrite)
    replayed = None
    if replay:  # before anything is written: its arguments are checked as it starts
        from pipeline.rollout.replay import replay_file

        replayed = replay_file(path, replay_episodes)
    with open_dataset(path) as ds:
        validate(ds)
        if contact_sheet is not None:
            if ds.metadata.camera is None:
                raise PipelineError(f"--contact-sheet: {path} holds no camera frames (record "
                                    "it with --camera WxH)")  # fmt: skip
            views = [ds.episode(i) for i in ds.episode_ids()[:SHEET_EPISODES]]
            write_contact_sheet(views, contact_sheet)
        summary = ds.summary().to_dict()
        bad = ds.verify() if verify else None
        drops = len(ds.dropped_attempts)
        sessions = ds.sessions
    console.print(inspect_table(summary, drops))
    console.print(ranges_table(summary))
    args = sessions[-1].get("recording_args") if sessions else None
    if isinstance(args, dict):
        console.print("recording arguments: " + recording_args_text(args), soft_wrap=True)
    payload: dict[str, Any] = {"command": "inspect", "summary": summary, "dropped": drops,
                               "sessions": sessions}  # fmt: skip
    if bad is not None:
        payload["verify"] = {"bad_episode_ids": bad, "ok": not bad}
        if bad:
            console.print(f"[red]verify: {len(bad)} bad episode(s): {bad}[/red]")
        else:
            console.print(f"verify: all {summary['episodes']} episode checksums match")
    if replayed is not None:
        payload["replay"] = [r.to_dict() for r in replayed]
        console.print(replay_table(replayed))
        exact = sum(r.exact for r in replayed)
        console.print(f"replay: {exact} of {len(replayed)} episode(s) replay exactly "
                      "(expected on the machine and build that recorded them)")  # fmt: skip
    if json_path is not None:
        write_json(json_path, payload)
        console.print(f"json: {json_path}")
    if contact_sheet is not None:
        console.print(f"contact sheet: {contact_sheet}")
    return 1 if bad else 0


def replay_table(results: list[Any]) -> Table:
    """Per replayed episode: steps, largest state deviation, where it starts."""
    table = Table(title="replay from stored seeds and executed actions")
    for column in ("episode", "steps", "max |obs - stored|", "first differing state"):
        table.add_column(column, justify="right")
    for r in results:
        first = "-" if r.first_step is None else f"{r.first_step} ({r.deviation_at_first:.2g})"
        steps = f"{r.steps} (ended early)" if r.ended_early else str(r.steps)
        table.add_row(str(r.episode), steps, f"{r.max_deviation:.3g}", first)
    return table


SHEET_EPISODES = 4
"""Episodes (rows) on an ``inspect --contact-sheet``."""


def recording_args_text(args: dict[str, Any]) -> str:
    """``key=value, ...`` of a recording, with the start phase its episodes really used
    (a walk recorded without --start-phase started at random phases)."""
    from pipeline.stages.record import DEFINING_ARGS, RecordConfig, env_kwargs_of

    shown = dict(args)
    defining = {k: args[k] for k in DEFINING_ARGS if k in args}
    phase = env_kwargs_of(RecordConfig(out=Path(), **defining)).get("start_phase")
    if phase is None:
        shown.pop("start_phase", None)  # an env without start phases
    else:
        shown["start_phase"] = phase
    return ", ".join(f"{k}={'default' if v is None else v}" for k, v in shown.items())


def inspect_table(s: dict[str, Any], drops: int) -> Table:
    table = Table(title=s["path"])
    table.add_column("", justify="left")
    table.add_column("value", justify="right")
    for name, value in dataset_rows(s, drops):
        table.add_row(name, value)
    return table


def ranges_table(s: dict[str, Any], limit: int = 8) -> Table:
    """First few per-dimension ranges of observations and actions (all are in --json)."""
    table = Table(title="per-dimension ranges (first dimensions; --json has all)")
    for column in ("array", "dims", "min (first dims)", "max (first dims)"):
        table.add_column(column)

    def fmt(values: list[float | None]) -> str:
        return " ".join("nan" if x is None else f"{x:.2f}" for x in values[:limit])

    for key in ("observation", "action"):
        low, high = s.get(f"{key}_min") or [], s.get(f"{key}_max") or []
        table.add_row(key, str(len(low)), fmt(low), fmt(high))
    return table


def inspect_command(
    path: Annotated[Path, typer.Argument(help="Demonstration file (.h5).")],
    verify: Annotated[
        bool, typer.Option(help="Re-compute every checksum; exit 1 if any episode is bad.")
    ] = False,
    json_out: JsonOut = None,
    contact_sheet: Annotated[
        Path | None,
        typer.Option(help="Write a PNG of camera frames: the first 4 episodes, 6 frames each."),
    ] = None,
    replay: Annotated[
        bool,
        typer.Option(
            help="Re-simulate episodes from their seeds and executed actions; report "
            "the largest state deviation and where it starts."
        ),
    ] = False,
    episodes: Annotated[
        int | None, typer.Option(help="With --replay: the first N episodes (default: all).")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Show what a demonstration file holds.

    Episodes, steps, survival, per-dimension ranges and the recording's arguments; --verify
    checks every episode's checksum, --replay re-simulates episodes.
    """
    if episodes is not None and not replay:
        raise PipelineError("--episodes: only with --replay")
    code = run_inspect_command(path, verify, json_out, make_console(), overwrite, contact_sheet,
                               replay, episodes)  # fmt: skip
    if code:
        raise typer.Exit(code)


def export_command(
    path: Annotated[Path, typer.Argument(help="Demonstration file (.h5).")],
    out: Annotated[Path, typer.Option(help="Minari datasets root directory to write into.")],
    format: Annotated[str, typer.Option(help="Interchange format (only 'minari').")] = "minari",
    dataset_id: Annotated[
        str | None, typer.Option(help="Minari id, e.g. humanoid/walk/expert-v0 (default: derived).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset.")] = False,
) -> None:
    """Export a demonstration file to a Minari dataset."""
    from datasets.interchange import MinariExistsError, export_minari

    _check_format(format)
    try:
        where = export_minari(path, out, dataset_id, overwrite=overwrite)
    except MinariExistsError as exc:
        raise PipelineError(f"--out {exc} (use --overwrite)") from None
    make_console().print(f"minari dataset: {where}")
    make_console().print(f"load it with: MINARI_DATASETS_PATH={out} python -c \"import minari; "
                    f"print(minari.load_dataset('{where.relative_to(out)}'))\"")  # fmt: skip


def import_command(
    source: Annotated[str, typer.Argument(help="Minari dataset directory or id.")],
    out: Annotated[Path, typer.Option(help="Demonstration file (.h5) to write.")],
    format: Annotated[str, typer.Option(help="Interchange format (only 'minari').")] = "minari",
    datasets_root: Annotated[
        Path | None, typer.Option(help="Minari datasets root for an id (default: Minari's).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Import a Minari dataset into a demonstration file."""
    from datasets.interchange import import_minari
    from pipeline.core.outputs import check_output_path

    _check_format(format)
    check_output_path(out, "--out", overwrite=overwrite)
    where = import_minari(source, out, datasets_root=datasets_root, overwrite=overwrite)
    make_console().print(f"dataset: {where}")


def _check_format(value: str) -> None:
    if value != "minari":
        raise PipelineError(f"--format: unknown format '{value}' (supported: minari)")
