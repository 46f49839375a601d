"""``pipeline compare``: policies and groups of policies on the same seeds, one table."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli.options import (
    ActionNoiseOption,
    EpisodeSeed,
    EpisodesPerPolicy,
    JsonOut,
    NoTrack,
    Overwrite,
    Push,
    TrackingUri,
    Workers,
)
from pipeline.cli.progress import make_console
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_dir, write_json
from pipeline.reports.tables import number, percent

if TYPE_CHECKING:
    from pipeline.stages.compare import CompareReport, CompareRequest

PLOT_FILE = "compare.png"
COMPARE_FILE = "compare.json"


def compare_table(report: CompareReport) -> Table:
    """One row per policy, then per group the mean ± 95% interval (worst - best)."""
    table = Table(title=f"{report.env_id}, {len(report.seeds)} episodes, seeds "
                        f"{report.seeds[0]}-{report.seeds[-1]}: expert survives "
                        f"{percent(report.expert['survival_rate'])}")  # fmt: skip
    for column in ("group", "policy", "survival", "on expert's starts", "norm. distance",
                   "pose reward"):  # fmt: skip
        table.add_column(column, justify="right", no_wrap=True)
    for row in report.policies:
        table.add_row(row["group"], row["policy"], percent(row["survival"]),
                      percent(row["survival_on_expert_starts"]), number(row["normalized_distance"]),
                      number(row["pose_reward"], 3))  # fmt: skip
    table.add_section()
    for name, stats in report.groups.items():
        pose = number(stats["pose_reward"]["mean"], 3)
        table.add_row(name, f"mean of {stats['policies']}", _group_cell(stats["survival"], True),
                      _group_cell(stats["survival_on_expert_starts"], True),
                      _group_cell(stats["normalized_distance"], False), pose)  # fmt: skip
    return table


def _group_cell(stat: dict[str, float], as_percent: bool) -> str:
    """``mean ± half-width (worst-best)``; no half-width for a group of one."""
    fmt = percent if as_percent else number
    half = ""
    if math.isfinite(stat["ci95"]):
        half = f" ± {100 * stat['ci95']:.0f}" if as_percent else f" ± {stat['ci95']:.2f}"
    return f"{fmt(stat['mean'])}{half} ({fmt(stat['worst'])}-{fmt(stat['best'])})"


def run_compare_command(
    request: CompareRequest,
    out: Path | None,
    tracking_uri: str | None,
    console: Console,
    lookup_uri: str | None = None,
) -> CompareReport:
    """Check, compare, print the table; plot, JSON and MLflow where asked."""
    from pipeline.reports.compare_plots import plot_groups
    from pipeline.rollout.action_noise import describe_action_noise
    from pipeline.rollout.options import describe_push
    from pipeline.stages.compare import check_request, compare
    from pipeline.tracking import open_tracker, run_name

    check_request(request)
    if out is not None:
        check_output_dir(out, "--out")
        if (out / COMPARE_FILE).exists() and not request.overwrite:
            raise PipelineError(f"--out {out}: already holds {COMPARE_FILE} (use --overwrite)")
    report = compare(request, lookup_uri or tracking_uri)
    console.print(compare_table(report))
    if report.push:
        console.print(f"pushed: {describe_push(report.push)}")
    if report.action_noise > 0:
        console.print(f"perturbed: {describe_action_noise(report.action_noise)}")
    payload = {"command": "compare", "groups_given": request.groups, **asdict(report)}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plot_groups(report.groups, report.policies, out / PLOT_FILE)
        write_json(out / COMPARE_FILE, payload)
        console.print(f"report and plot: {out}")
    if request.json_path is not None:
        write_json(request.json_path, payload)
        console.print(f"json: {request.json_path}")
    if tracking_uri is not None:
        tags = {"stage": "compare", "env_id": report.env_id}
        name = run_name("compare", report.env_id)
        with open_tracker(tracking_uri, run_name=name, tags=tags) as tracker:
            tracker.log_params({"groups": request.groups, "episodes": request.episodes,
                                "seed": request.seed, "push": request.push,
                                "action_noise": request.action_noise})  # fmt: skip
            for name, stats in report.groups.items():
                tracker.log_metrics({f"compare/{name}/{key}": value["mean"]
                                     for key, value in stats.items() if key != "policies"},
                                    step=0)  # fmt: skip
            tracker.log_dict(payload, COMPARE_FILE)
            if out is not None:
                tracker.log_artifact(out / PLOT_FILE, "plots")
            console.print(f"mlflow run: {tracker.run_id} ({tracking_uri})")
    return report


def compare_command(
    group: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=PATTERN: the policy or run directories a shell pattern "
            "matches (e.g. bc=runs/bc-s*), or one MLflow URI; repeatable."
        ),
    ] = None,
    policy: Annotated[
        list[str] | None, typer.Option(help="A single policy, its own group; repeatable.")
    ] = None,
    episodes: EpisodesPerPolicy = 40,
    seed: EpisodeSeed = 1000,
    workers: Workers = 2,
    push: Push = None,
    action_noise: ActionNoiseOption = 0.0,
    out: Annotated[
        Path | None, typer.Option(help="Directory for compare.json and compare.png.")
    ] = None,
    no_track: NoTrack = False,
    tracking_uri: TrackingUri = None,
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
) -> None:
    """Compare policies and groups of policies on the same seeds.

    Per group the mean over its policies with a 95% interval, per policy its own row.
    """
    from pipeline.stages.compare import CompareRequest, check_request, parse_groups
    from pipeline.tracking import prepare

    request = CompareRequest(groups=parse_groups(group or [], policy or []), episodes=episodes,
                             seed=seed, workers=workers, json_path=json_out,
                             overwrite=overwrite, push=push,
                             action_noise=action_noise)  # fmt: skip
    check_request(request)
    uri = None if no_track else prepare(tracking_uri)
    run_compare_command(request, out, uri, make_console(), lookup_uri=tracking_uri)
