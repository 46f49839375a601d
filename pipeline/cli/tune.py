"""``pipeline tune``: random search, coarse to fine, on the training config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipeline.cli.options import BackendKind, JsonOut, NoTrack, Overwrite, RayAddress, TrackingUri
from pipeline.cli.progress import make_console
from pipeline.core.outputs import check_output_path, write_json


def tune_command(
    data: Annotated[Path, typer.Option(help="Demonstration file (.h5) every trial trains on.")],
    space: Annotated[
        Path,
        typer.Option(
            help="YAML: config key -> {log_uniform|uniform|int: [lo, hi]} or {choice: [...]}."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Study directory: study.db, trials/, best_config.yaml.")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Config overrides every trial starts from, e.g. training.epochs=20."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Base training YAML of every trial.")] = None,
    trials: Annotated[int, typer.Option(help="Coarse-stage trials (random search).")] = 8,
    fine_trials: Annotated[
        int, typer.Option(help="Fine-stage trials, in ranges narrowed around the best quarter.")
    ] = 0,
    objective: Annotated[
        str, typer.Option(help="val_loss (minimized) or closed_loop (survival, then distance).")
    ] = "val_loss",
    rollout_episodes: Annotated[
        int, typer.Option(help="closed_loop: episodes per trial, on seeds evaluation never uses.")
    ] = 10,
    workers: Annotated[int, typer.Option(help="Trials at a time, each in its own process.")] = 1,
    backend: BackendKind = "local",
    ray_address: RayAddress = None,
    study: Annotated[str, typer.Option(help="Study name inside study.db.")] = "tune",
    seed: Annotated[int, typer.Option(help="Seed of the parameter draws.")] = 0,
    resume: Annotated[
        bool, typer.Option(help="Continue the study in --out; finished trials are not repeated.")
    ] = False,
    no_track: NoTrack = False,
    tracking_uri: TrackingUri = None,
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
) -> None:
    """Search the training config: random search, coarse then fine.

    Optuna's random search; every trial is a real `pipeline train` run in its own process,
    the study resumable, the trials' MLflow runs nested under the study's.
    """
    from pipeline.rollout.cluster import cluster_session, parse_backend
    from pipeline.workflows.tune.study import TuneRequest, check_tune_request, run_tune

    request = TuneRequest(data=data, space=space, out=out, trials=trials,
                          fine_trials=fine_trials, objective=objective,
                          rollout_episodes=rollout_episodes, base_config=config,
                          overrides=list(overrides or []), workers=workers, study=study,
                          resume=resume, seed=seed)  # fmt: skip
    check_tune_request(request)
    request.backend = parse_backend(backend, ray_address)
    if json_out is not None:
        check_output_path(json_out, "--json", (".json",), overwrite=overwrite)
    if not no_track:
        from pipeline.tracking import prepare

        request.tracking_uri = prepare(tracking_uri, request.experiment)
    console = make_console()
    total = trials + fine_trials

    def on_trial(result) -> None:
        console.print(f"trial {result.number} ({result.stage}): {objective} "
                      f"{result.value:.4g}, {result.train_s:.0f} s", highlight=False)  # fmt: skip

    console.print(f"tune: {total} trials, {workers} at a time on {request.backend.describe()}, "
                  f"study {out / 'study.db'}")  # fmt: skip
    with cluster_session(request.backend, request.tracking_uri):
        result = run_tune(request, on_trial)
    for stage, ranges in result.stages.items():
        console.print(f"{stage} ranges: " + "; ".join(
            f"{k} {v}" for item in ranges for k, v in item.items()), highlight=False)  # fmt: skip
    table = Table(title=f"best trials ({result.direction} {objective})")
    extra = ["val_loss"] if objective != "val_loss" else []
    for column in ("trial", "stage", objective, *extra, "params"):
        table.add_column(column)
    ranked = sorted(result.trials, key=lambda t: t["value"],
                    reverse=result.direction == "maximize")  # fmt: skip
    for row in ranked[:5]:
        table.add_row(str(row["number"]), row["stage"], f"{row['value']:.4g}",
                      *(f"{row[key]:.4g}" for key in extra),
                      ", ".join(f"{k}={v}" for k, v in row["params"].items()))  # fmt: skip
    console.print(table)
    console.print(f"best config: {result.best_config} (pipeline train --config it)")
    for plot in result.plots:
        console.print(f"plot: {plot}")
    if result.run_id:
        console.print(f"mlflow run: {result.run_id}")
    if json_out is not None:
        write_json(json_out, {"command": "tune", **result.to_dict()})
        console.print(f"json: {json_out}")
