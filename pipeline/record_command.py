"""``pipeline record`` and ``pipeline inspect``: validation, progress and reports."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from datasets import Compression, Episode, open_dataset, validate
from datasets.store.checks import location_problem
from pipeline.errors import PipelineError
from pipeline.outputs import OVERWRITE_HINT, check_output_path, make_parent, write_json
from pipeline.policies import check_policy_name
from pipeline.progress import StageProgress
from pipeline.record import DEFINING_ARGS, RecordConfig, RecordSummary, env_kwargs_of, record
from pipeline.rollout_command import RolloutRequest, env_kwargs_for


def validate_config(config: RecordConfig) -> None:
    """Check every option before any work starts."""
    if config.mode != "resume":
        env_kwargs_for(RolloutRequest(config.env_id, "random", 1, 0, config.start_phase,
                                      config.episode_seconds))  # fmt: skip
        check_policy_name(config.expert, config.env_id)
    if config.episodes < 1:
        raise PipelineError(f"--episodes: must be >= 1, got {config.episodes}")
    if config.workers < 1:
        raise PipelineError(f"--workers: must be >= 1, got {config.workers}")
    if not (math.isfinite(config.noise) and config.noise >= 0):
        raise PipelineError(f"--noise: must be a finite number >= 0, got {config.noise}")
    if config.max_attempts is not None and config.max_attempts < 1:
        raise PipelineError(f"--max-attempts: must be >= 1, got {config.max_attempts}")
    try:
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
    validate_config(config)
    if json_path is not None:
        check_json_path(config, json_path)
    make_parent(config.out, "--out")
    with StageProgress(console) as progress:
        bar = progress.add("record", total=None)

        def advance(summary: RecordSummary, episode: Episode) -> None:
            rate = summary.steps / max(progress.elapsed(bar), 1e-9)
            falls = summary.dropped_fell + int(bool(episode.fell and config.keep_failed))
            progress.update(
                bar,
                completed=summary.committed,
                total=summary.target_episodes - (summary.total_episodes or 0) or None,
                note=f"{rate:.0f} steps/s, falls {falls}",
            )

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


def run_inspect_command(
    path: Path, verify: bool, json_path: Path | None, console: Console, overwrite: bool = False
) -> int:
    """Print what a demonstration file holds; with ``verify``, re-hash every episode.

    Returns 1 when verification finds a bad episode, else 0.
    """
    if json_path is not None:
        check_output_path(json_path, "--json", (".json",), overwrite=overwrite)
    validate(path)
    with open_dataset(path) as ds:
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
    if json_path is not None:
        write_json(json_path, payload)
        console.print(f"json: {json_path}")
    return 1 if bad else 0


def recording_args_text(args: dict[str, Any]) -> str:
    """``key=value, ...`` of a recording, with the start phase its episodes really used
    (a walk recorded without --start-phase started at random phases)."""
    shown = dict(args)
    defining = {k: args[k] for k in DEFINING_ARGS if k in args}
    phase = env_kwargs_of(RecordConfig(out=Path(), **defining)).get("start_phase")
    if phase is None:
        shown.pop("start_phase", None)  # an env without start phases
    else:
        shown["start_phase"] = phase
    return ", ".join(f"{k}={'default' if v is None else v}" for k, v in shown.items())


def _stat(stats: dict[str, Any] | None, digits: int = 1) -> str:
    if not stats or stats.get("mean") is None:
        return "-"
    return (f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} "
            f"[{stats['min']:.{digits}f}, {stats['max']:.{digits}f}]")  # fmt: skip


def inspect_table(s: dict[str, Any], drops: int) -> Table:
    table = Table(title=s["path"])
    table.add_column("", justify="left")
    table.add_column("value", justify="right")
    survival = s.get("survival_rate")
    rows = [
        ("environment", s["env_id"]),
        ("expert / noise", f"{s.get('expert_id')} / {s.get('noise_scale')}"),
        ("schema version", str(s["schema_version"])),
        ("created", s.get("created", "")),
        ("episodes (pending in journal)", f"{s['episodes']} ({s.get('pending_episodes', 0)})"),
        ("steps", str(s["total_steps"])),
        ("dropped attempts", _counts(drops, s.get("dropped_reasons"))),
        ("survival rate", "-" if survival is None else f"{100 * survival:.1f}%"),
        ("steps per episode", _stat(s.get("steps"), 0)),
        ("return", _stat(s.get("returns"))),
        ("distance m", _stat(s.get("distances"), 2)),
        ("file size", f"{s['file_bytes'] / 1e6:.2f} MB ({s.get('compression')})"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _counts(total: int, by_reason: dict[str, int] | None) -> str:
    """``3 (fell: 2, non-finite: 1)``."""
    reasons = ", ".join(f"{reason}: {n}" for reason, n in (by_reason or {}).items())
    return f"{total} ({reasons})" if reasons else str(total)


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
