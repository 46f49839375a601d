"""Options and helpers that several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

TrackingUri = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)."),
]
"""The ``--tracking-uri`` option every tracked command shares."""

Overwrite = Annotated[bool, typer.Option(help="Replace existing output files (refused otherwise).")]
"""The ``--overwrite`` option of every command that writes files."""


Push = Annotated[
    str | None,
    typer.Option(
        metavar="IMPULSE[@TIME]",
        help="Push every episode sideways on the torso: IMPULSE N*s at TIME s, or without "
        "TIME at a random moment of the gait; the side is random. Both come from the "
        "episode's seed, so every policy gets the same push.",
    ),
]
"""The ``--push`` option of the commands that evaluate policies."""

ActionNoiseOption = Annotated[
    float,
    typer.Option(
        "--action-noise",
        metavar="SIGMA",
        help="Add Gaussian noise of SIGMA x the expert's action scale (DART's unit) to every "
        "executed action of the learner and the expert (never the random policy), drawn from "
        "the episode's seed: how robust is the walk? The expert itself keeps 90-94% of its "
        "surviving walk starts at 0.001, about 95% at 0.0001.",
    ),
]
"""The ``--action-noise`` option of the commands that roll out and evaluate policies."""


def from_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` was given rather than left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


BackendKind = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Where the work runs: local processes, or ray (an existing Ray cluster at "
        "--ray-address; pip install '.[ray]'). Results are the same.",
    ),
]
"""The ``--backend`` option of the commands that run episodes or trials."""

RayAddress = Annotated[
    str | None,
    typer.Option(
        help="--backend ray: the cluster's head, HOST:PORT (default: RAY_ADDRESS), "
        "ray://HOST:PORT or auto.",
    ),
]
"""The ``--ray-address`` option that goes with ``--backend``."""

Resume = Annotated[
    bool, typer.Option(help="Continue the run in --out where it stopped (same arguments).")
]
"""The ``--resume`` option of the algorithms that checkpoint their runs (DAgger, finetune)."""

NoTrack = Annotated[bool, typer.Option("--no-track", help="Run without MLflow tracking.")]
"""The ``--no-track`` option of every tracked command."""

JsonOut = Annotated[
    Path | None, typer.Option("--json", help="Also write the results to this JSON file.")
]
"""The ``--json`` option of every command that reports results."""

Workers = Annotated[int, typer.Option(help="Worker processes running whole episodes.")]
"""The ``--workers`` option of the commands that run episodes (each its own default)."""

EpisodeSeed = Annotated[int, typer.Option("--seed", help="Episode i is reset with seed + i.")]
"""The ``--seed`` option of the commands that run a range of episode seeds."""

EpisodesPerPolicy = Annotated[int, typer.Option("--episodes", help="Episodes per policy (>= 1).")]
"""The ``--episodes`` option of the commands that evaluate policies on the same seeds."""

EpisodeSeconds = Annotated[
    float | None,
    typer.Option(help="Episode limit, simulated seconds (default: the env's)."),
]
"""The ``--episode-seconds`` option of the commands that run episodes."""

POLICY_SOURCES = (
    "policy directory, training run directory, runs:/<id>/policy or models:/NAME/VERSION"
)
"""Where a policy may come from: the help of every option or argument that names one."""

PolicySource = Annotated[str, typer.Option("--policy", help=f"The {POLICY_SOURCES}.")]
"""The ``--policy`` option of the commands that evaluate a trained policy."""
