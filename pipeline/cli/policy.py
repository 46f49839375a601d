"""``pipeline policy export``: take a trained policy off the testbed (``pipeline export``
moves demonstration files; this group acts on policies)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.options import POLICY_SOURCES, JsonOut, Overwrite, TrackingUri
from pipeline.cli.progress import make_console
from pipeline.core.outputs import check_output_path, write_json

policy_app = typer.Typer(
    help="Act on trained policies: export them for other runtimes.", no_args_is_help=True
)


@policy_app.command("export")
def export_command(
    policy: Annotated[
        str,
        typer.Argument(help=f"The {POLICY_SOURCES}."),
    ],
    fmt: Annotated[str, typer.Option("--format", help="saved_model, onnx or litert.")],
    out: Annotated[Path, typer.Option(help="Directory to create (must not exist).")],
    quantize: Annotated[str | None, typer.Option(help="int8: int8 weights (litert only).")] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Recording whose states check the export (default: the policy's training data)."
        ),
    ] = None,
    states: Annotated[int, typer.Option(help="Recorded states the check runs on.")] = 1000,
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Export a policy for another runtime (SavedModel, ONNX, LiteRT).

    Normalization inside (raw observations in, raw actions out), its spec beside it, after
    checking it against the Keras policy on recorded states.
    """
    from pipeline.stages.policy_export import ExportRequest, check_request, export_policy

    request = ExportRequest(policy=policy, format=fmt, out=out, quantize=quantize,
                            data=data, states=states)  # fmt: skip
    check_request(request)
    if json_out is not None:
        check_output_path(json_out, "--json", (".json",), overwrite=overwrite)
    report = export_policy(request, lookup_uri=tracking_uri)
    console = make_console()
    bound = " (int8: not bounded)" if report.quantize else " (allowed 1e-4)"
    console.print(
        f"parity on {report.states} recorded states of {report.data}: max |diff| "
        f"{report.max_abs_diff:.3g}{bound}, mean {report.mean_abs_diff:.3g}"
    )
    console.print(f"wrote {report.model_path} ({report.size_bytes / 1e6:.2f} MB, "
                  f"{report.seconds:.1f} s) with spec.json and export.json")  # fmt: skip
    console.print(f"run it: pipeline evaluate --policy {report.directory}")
    if json_out is not None:
        write_json(json_out, {"command": "policy export", **report.to_dict()})
