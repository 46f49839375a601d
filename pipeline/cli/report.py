"""``pipeline report``: one HTML page for a run, to open anywhere and send."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.options import NoTrack, Overwrite, TrackingUri
from pipeline.cli.progress import make_console


def report_command(
    run: Annotated[
        Path,
        typer.Argument(
            help="A training run, evaluation (--out), DAgger, fine-tuning or quickstart "
            "folder; a folder of quickstart runs reports the newest."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="The HTML file (default: RUN/report.html).")
    ] = None,
    overwrite: Overwrite = False,
    no_track: NoTrack = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Write one self-contained HTML page about a run (opens offline).

    Results against the expert and a random policy, survival by start phase, videos,
    learning curves, plots, config, data and the commands that reproduce it; logged to the
    run's MLflow run.
    """
    from pipeline.workflows.report import ReportRequest, build_report, check_request

    request = ReportRequest(run=run, out=out, overwrite=overwrite)
    check_request(request)
    uri = None
    if not no_track:
        from pipeline.tracking import resolve_tracking_uri

        uri = resolve_tracking_uri(tracking_uri)
    result = build_report(request, uri)
    console = make_console()
    console.print(f"{result.kind} report: {', '.join(result.sections)}")
    console.print(f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB, "
                  f"{result.seconds:.1f} s)")  # fmt: skip
    if result.logged_run:
        console.print(f"logged to MLflow run {result.logged_run} (artifacts: reports/)")
