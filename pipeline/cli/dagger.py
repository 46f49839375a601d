"""``pipeline dagger``: check every option, run DAgger with a line per iteration, then the
table of iterations and where the outputs are."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.algorithms.dagger_config import DaggerConfig
from pipeline.cli.config_options import config_options, option_error
from pipeline.cli.options import (
    BackendKind,
    JsonOut,
    NoTrack,
    Overwrite,
    RayAddress,
    Resume,
    TrackingUri,
)
from pipeline.cli.progress import make_console
from pipeline.cli.show_config import ShowConfig, print_configs
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_path, write_json
from pipeline.reports.tables import number, percent

if TYPE_CHECKING:
    from pipeline.algorithms.dagger import DaggerResult, IterationRow
    from pipeline.algorithms.fit_selection import Candidate, FinalChoice


def iteration_line(row: IterationRow) -> str:
    """One progress line per finished iteration."""
    beta = "demonstrations" if row.iteration == 0 else f"beta {row.beta:.3f}"
    return (f"iteration {row.iteration} ({beta}): {row.labels} labels, survival "
            f"{percent(row.survival)}, normalized distance {number(row.normalized_distance)}, "
            f"fit {row.fit_s:.0f} s, rollouts {row.rollout_s:.0f} s, "
            f"evaluation {row.eval_s:.0f} s")  # fmt: skip


def candidate_line(candidate: Candidate, episodes: int) -> str:
    """One progress line per judged candidate for the final policy."""
    seed = "" if candidate.training_seed is None else f", training seed {candidate.training_seed}"
    return (f"final candidate {candidate.name}{seed}: survival {percent(candidate.survival)} "
            f"on {episodes} selection episodes, normalized distance "
            f"{number(candidate.normalized_distance)}")  # fmt: skip


def final_table(final: FinalChoice, episodes: int) -> Table:
    """The candidates' selection scores, the one published marked, and its evaluation."""
    columns, rows, caption = final.table()
    table = Table(title=f"The final policy: the best of {len(final.candidates)} on "
                        f"{episodes} selection episodes", caption=caption)  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def iterations_table(result: DaggerResult, episodes: int) -> Table:
    """Labels, survival, distance, pose reward and on-policy error per iteration."""
    expert = result.expert
    table = Table(title=f"DAgger on {result.env_id}, {episodes} evaluation episodes: expert "
                        f"survives {percent(expert.get('survival_rate', math.nan))}")  # fmt: skip
    for column in ("iteration", "beta", "episodes added", "labels", "survival",
                   "on expert's starts", "distance m", "norm. distance", "pose reward",
                   "action error", "val loss"):  # fmt: skip
        table.add_column(column, justify="right", no_wrap=True)
    for r in result.rows:
        table.add_row(str(r.iteration), number(r.beta, 3), str(r.episodes_added), str(r.labels),
                      percent(r.survival), percent(r.survival_on_expert_starts), number(r.distance),
                      number(r.normalized_distance), number(r.pose_reward, 3),
                      number(r.action_error, 3), number(r.val_loss, 4))  # fmt: skip
    return table


def run_dagger_command(
    init_data: Path,
    out: Path,
    config: DaggerConfig,
    train_overrides: tuple[Path | None, list[str]],
    env_id: str | None,
    tracking: tuple[bool, str | None],
    json_path: Path | None,
    console: Console,
    overwrite: bool = False,
    resume: bool = False,
    show_config: bool = False,
) -> DaggerResult | None:
    """Validate everything, then run DAgger and print its table. ``tracking`` is
    (``--no-track``, ``--tracking-uri``). ``show_config``: print DAgger's and the training
    config, resolved, and stop."""
    from pipeline.algorithms.dagger import AGGREGATE_FILE, check_request, config_warnings, dagger
    from pipeline.algorithms.train_config import TrainOptions, recorded_env, resolve_train_config
    from pipeline.rollout.cluster import cluster_session
    from pipeline.tracking import prepare

    if json_path is not None:
        check_output_path(json_path, "--json", (".json",), overwrite=overwrite)
    config_path, overrides = train_overrides
    no_track, tracking_uri = tracking
    train_config = resolve_train_config(
        config_path, overrides, env_id=env_id or recorded_env(init_data),
        options=TrainOptions(no_track=no_track, tracking_uri=tracking_uri),
    )  # fmt: skip
    if show_config:
        print_configs(
            console,
            {
                "DAgger (the options above)": config,
                "training (every fit; pipeline train's keys)": train_config,
            },
        )
        return None
    check_request(init_data, out, config, env_id, resume, train_config)
    for warning in config_warnings(train_config):
        console.print(f"warning: {warning}", markup=False)
    uri = None
    if train_config.tracking.enabled:
        uri = prepare(train_config.tracking.tracking_uri, train_config.tracking.experiment)

    def on_iteration(row: IterationRow) -> None:
        console.print(iteration_line(row), highlight=False)

    def on_candidate(candidate: Candidate) -> None:
        console.print(candidate_line(candidate, config.selection_episodes), highlight=False)

    with cluster_session(config.backend, uri):
        result = dagger(init_data, out, config, train_config, env_id=env_id, tracking_uri=uri,
                        resume=resume, on_iteration=on_iteration,
                        on_candidate=on_candidate)  # fmt: skip
    console.print(iterations_table(result, config.eval_episodes))
    if result.final is not None:
        console.print(final_table(result.final, config.selection_episodes))
    console.print(f"policy: {result.policy_dir}")
    console.print(f"data: {Path(result.out_dir) / AGGREGATE_FILE}")
    if result.run_id:
        console.print(f"mlflow run: {result.run_id} ({uri})")
    if json_path is not None:
        write_json(json_path, {"command": "dagger", **asdict(result)})
        console.print(f"json: {json_path}")
    return result


@config_options(DaggerConfig)
def dagger_command(
    init_data: Annotated[
        Path, typer.Option(help="Expert demonstrations (.h5) to start from (iteration 0).")
    ],
    out: Annotated[Path, typer.Option(help="New directory for data, policies and report.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Training config overrides key=value, as for pipeline train."),
    ] = None,
    env: Annotated[
        str | None, typer.Option(help="Environment (default: the one --init-data records).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Training YAML config; default: the env's measured recipe."),
    ] = None,
    backend: BackendKind = "local",
    ray_address: RayAddress = None,
    resume: Resume = False,
    no_track: NoTrack = False,
    tracking_uri: TrackingUri = None,
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
    show_config: ShowConfig = False,
    config_values: dict[str, Any] | None = None,
) -> None:
    """DAgger: the expert labels what the learner saw; refit, repeat.

    Roll out expert and learner together, let the expert label the learner's states, refit
    on everything gathered; a table of survival and distance per iteration. The options
    after --config are DAgger's config (--show-config prints it with the training config).
    """
    from pydantic import ValidationError

    from pipeline.rollout.cluster import parse_backend

    try:
        cfg = DaggerConfig(**(config_values or {}))
    except ValidationError as exc:
        raise PipelineError(option_error(exc)) from None
    if not init_data.exists():
        raise PipelineError(f"--init-data {init_data}: file not found")
    cfg = cfg.model_copy(update={"backend": parse_backend(backend, ray_address)})
    run_dagger_command(init_data, out, cfg, (config, overrides or []), env,
                       (no_track, tracking_uri), json_out, make_console(), overwrite,
                       resume, show_config)  # fmt: skip
