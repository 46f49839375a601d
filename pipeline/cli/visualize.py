"""``pipeline visualize``: an image policy's filters, feature maps and saliency."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.options import POLICY_SOURCES, NoTrack, TrackingUri
from pipeline.cli.progress import make_console


def visualize_command(
    policy: Annotated[str, typer.Option(help=f"The image policy: {POLICY_SOURCES}.")],
    data: Annotated[
        Path, typer.Option(help="Recording made with the policy's camera (record --camera).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the pictures (default: visualize/ in the policy's run "
            "directory); must not exist or be empty."
        ),
    ] = None,
    episode: Annotated[
        int | None, typer.Option(help="Episode of --data to show (default: the first).")
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames whose feature maps are shown.")] = 4,
    clip_steps: Annotated[
        int, typer.Option(help="Steps from the episode's start in the saliency clip.")
    ] = 60,
    no_track: NoTrack = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Show what an image policy looks at.

    Its first-layer filters, every convolution's feature maps and a saliency map (how much
    each pixel moves the actions) over a clip; logged to the policy's MLflow run.
    """
    from pipeline.stages.visualize import VisualizeRequest, check_request, visualize

    request = VisualizeRequest(policy=policy, data=data, out=out, episode=episode,
                               frames=frames, clip_steps=clip_steps)  # fmt: skip
    check_request(request)
    console = make_console()
    result = visualize(request, lookup_uri=tracking_uri, track=not no_track)
    console.print(f"layers shown: {', '.join(result.layers)}")
    for path in result.files:
        console.print(f"wrote {path}")
    if result.logged_run:
        console.print(f"logged to MLflow run {result.logged_run} (artifacts: visualize/)")
