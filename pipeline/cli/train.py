"""``pipeline train``: resolve the config, check tracking, train with progress, report."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli.options import JsonOut, NoTrack, TrackingUri
from pipeline.cli.progress import StageProgress, make_console
from pipeline.cli.show_config import ShowConfig, print_configs
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_path, write_json

if TYPE_CHECKING:
    from datasets import Dataset
    from pipeline.training.config import TrainConfig


def default_out(data: Path, config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{data.stem}-{config.model.name}-seed{config.seed}-{stamp}"


def run_train_command(
    data: Dataset,
    config: TrainConfig,
    out: Path | None,
    resume: bool,
    json_path: Path | None,
    console: Console,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run ``pipeline train`` on the open, checked ``data`` and print the results table
    (``overwrite``: replace an existing ``json_path``; a run directory is never replaced)."""
    from pipeline.algorithms.behaviour_cloning import train
    from pipeline.tracking import prepare
    from pipeline.training.resume import read_run_start

    if json_path is not None:
        check_output_path(json_path, "--json", (".json",), overwrite=overwrite)
    if out is None:
        if resume:
            raise PipelineError("--resume needs --out (the run directory to continue)")
        out = default_out(data.path, config)
    uri = None
    if config.tracking.enabled:
        # A resumed run continues in the store that holds its MLflow run.
        recorded = read_run_start(out).get("tracking_uri") if resume else None
        uri = prepare(recorded or config.tracking.tracking_uri, config.tracking.experiment)
    with StageProgress(console) as progress:
        # The clock starts when train's checks have passed (a refused run shows no bar).
        bar = progress.add("train epochs", total=config.training.epochs, start=False)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            note = (f"loss {metrics.get('train/loss', math.nan):.4f} "
                    f"val {metrics.get('val/loss', math.nan):.4f}")  # fmt: skip
            if "rollout/survival" in metrics:
                note += (f" rollouts: survival {100 * metrics['rollout/survival']:.0f}%, "
                         f"distance {metrics['rollout/normalized_distance']:.2f}")  # fmt: skip
            progress.update(bar, completed=epoch + 1, note=note)

        result = train(
            data,
            config,
            out,
            resume=resume,
            tracking_uri=uri,
            on_epoch=on_epoch,
            on_start=lambda: progress.start(bar),
        )
    console.print(result_table(result))
    console.print(f"policy: {result.policy_dir}")
    if result.run_id:
        console.print(f"mlflow run: {result.run_id} ({uri}); look at it with: mlflow ui "
                      f"--backend-store-uri {uri}")  # fmt: skip
        if config.tracking.registered_model:
            console.print(f"registered model: {config.tracking.registered_model}")
    payload = {"command": "train", **asdict(result), "tracking_uri": uri}
    if json_path is not None:
        write_json(json_path, payload)
        console.print(f"json: {json_path}")
    return payload


def result_table(r: Any) -> Table:
    table = Table(title=f"training run {r.out_dir}")
    table.add_column("", justify="left")
    table.add_column("value", justify="right")
    rows = [
        ("device", r.device),
        ("episodes train / val", f"{r.train_episodes} / {r.val_episodes}"),
        ("samples per epoch", str(r.train_samples)),
        ("epochs (resumed from)", f"{r.epochs} ({r.resumed_from_epoch})"),
        ("early stop", "yes" if r.stopped_early else "no"),
        ("initial val loss", f"{r.initial_val_loss:.4f}"),
        ("mean-action val loss (baseline)", f"{r.mean_action_val_loss:.4f}"),
        ("final train loss", f"{r.final_train_loss:.4f}"),
        ("best val loss (epoch)", f"{r.best_val_loss:.4f} ({r.best_epoch})"),
        *_selection_rows(r),
        ("samples/s", f"{r.samples_per_s:.0f}"),
        ("wall s", f"{r.wall_s:.1f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _selection_rows(r: Any) -> list[tuple[str, str]]:
    """Closed-loop selection's choice and how well validation loss agreed with it."""
    if not r.rollouts:
        return []
    chosen = next(x for x in r.rollouts if x["epoch"] == r.selected_epoch - 1)
    last = r.rollouts[-1]
    return [
        ("saved: best rollouts (epoch)",
         f"survival {100 * chosen['survival']:.0f}%, distance "
         f"{chosen['normalized_distance']:.2f} ({r.selected_epoch})"),
        ("last epoch's rollouts",
         f"survival {100 * last['survival']:.0f}%, distance {last['normalized_distance']:.2f}"),
        ("rank corr. val loss / rollouts", f"{r.rank_correlation:+.2f} ({len(r.rollouts)} checks)"),
    ]  # fmt: skip


def run_overfit_command(
    data: Dataset,
    config: TrainConfig,
    json_path: Path | None,
    console: Console,
    overwrite: bool = False,
) -> int:
    """Print the verdict; exit code 1 when the loss does not approach zero."""
    if json_path is not None:
        check_output_path(json_path, "--json", (".json",), overwrite=overwrite)
    from pipeline.training.overfit import overfit_one_batch

    report = overfit_one_batch(data, config)
    verdict = "yes" if report["near_zero"] else "NO (check the model and the data)"
    console.print(
        f"overfit one batch of {report['batch_size']} for {report['steps']} steps: "
        f"{report['criterion']} "
        f"{report['initial_loss']:.4f} -> {report['final_loss']:.4f} "
        f"({100 * report['ratio']:.1f}% of the initial); near zero: {verdict}"
    )
    if json_path is not None:
        write_json(json_path, {"command": "train --overfit-batch", **report})
    return 0 if report["near_zero"] else 1


def _key(dotted: str, prefix: str = "") -> str:
    """The help of an option that sets the config key ``dotted``: that key's docstring."""
    from pipeline.core.config_docs import help_text
    from pipeline.training.config import TrainConfig

    return f"{prefix}{help_text(TrainConfig, dotted)} (config key {dotted})"


def train_command(
    data: Annotated[Path, typer.Option(help="Demonstration file (.h5) to learn from.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Config overrides key=value, e.g. optimizer.learning_rate=3e-4."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="YAML config (see configs/); default: the measured recipe for the data's env."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help=_key("seed"))] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/<data>-<model>-...).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in --out from its last checkpoint, with the run's own "
            "config.yaml and MLflow run; --config, overrides and options that contradict "
            "it are refused (a longer run is a new --out)."
        ),
    ] = False,
    no_track: NoTrack = False,
    tracking_uri: TrackingUri = None,
    register: Annotated[str | None, typer.Option(help=_key("tracking.registered_model"))] = None,
    deterministic: Annotated[bool, typer.Option(help=_key("training.deterministic"))] = False,
    mixed_precision: Annotated[bool, typer.Option(help=_key("training.mixed_precision"))] = False,
    overfit_batch: Annotated[
        bool, typer.Option(help="Only train on one batch and report if the loss nears 0.")
    ] = False,
    init_from: Annotated[str | None, typer.Option(help=_key("init.from_policy"))] = None,
    freeze: Annotated[int | None, typer.Option(help=_key("init.freeze"), min=0)] = None,
    keep_normalization: Annotated[bool, typer.Option(help=_key("init.keep_normalization"))] = False,
    json_out: JsonOut = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing --json file (never a run directory).")
    ] = False,
    show_config: ShowConfig = False,
) -> None:
    """Train a policy on recorded demonstrations (behaviour cloning).

    Without --config the measured recipe of the data's environment is the base; overrides
    and options apply on top (--show-config prints the result). Tracked in MLflow.
    """
    from datasets import DatasetError
    from pipeline.algorithms.train_config import TrainOptions, resolve_train_config
    from pipeline.training.inputs import open_training_data

    # The command's one handle on the file. A config mistake is reported before a data
    # problem (configs are checked before any work), so a failed open waits its turn.
    try:
        ds, problem = open_training_data(data), None
    except (PipelineError, DatasetError) as exc:
        ds, problem = None, exc
    try:
        options = TrainOptions(
            seed,
            no_track,
            tracking_uri,
            register,
            deterministic,
            mixed_precision,
            init_from,
            freeze,
            keep_normalization,
        )
        cfg = resolve_train_config(config, overrides or [], options=options,
                                   env_id=ds.metadata.env_id if ds else None,
                                   resume_out=out if resume else None)  # fmt: skip
        if ds is None:
            raise problem  # type: ignore[misc]
        if show_config:
            print_configs(make_console(), {f"pipeline train: {data}": cfg})
            return
        if overfit_batch:
            code = run_overfit_command(ds, cfg, json_out, make_console(), overwrite)
            if code:
                raise typer.Exit(code)
            return
        run_train_command(ds, cfg, out, resume, json_out, make_console(), overwrite)
    finally:
        if ds is not None:
            ds.close()
