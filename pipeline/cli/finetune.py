"""``pipeline finetune``: check every option, fine-tune the policy with a line per update and
per selection, then the selection table and where the outputs are."""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

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
from pipeline.core.outputs import check_output_path, write_json
from pipeline.reports.tables import number, percent

if TYPE_CHECKING:
    from pipeline.algorithms.finetune import FinetuneResult, SelectionRow, UpdateRow
    from pipeline.algorithms.finetune_config import FinetuneConfig


def update_line(row: UpdateRow) -> str:
    """One progress line per update."""
    what = "critic warm-up" if row.phase == "warmup" else "PPO"
    ppo = (
        ""
        if row.phase == "warmup"
        else (
            f", KL {number(row.approx_kl, 4)}, clipped {percent(row.clip_fraction)}, "
            f"log-std {number(row.log_std)}, anchor {number(row.anchor_weight, 3)}"
        )
    )
    return (
        f"update {row.update} ({what}): {row.env_steps} steps, {row.episodes} episodes "
        f"ended, survival {percent(row.survival)}, return {number(row.mean_return, 1)}, "
        f"value loss {number(row.value_loss, 3)}{ppo}, {row.steps_per_s:.0f} steps/s "
        f"per worker"
    )


def selection_line(row: SelectionRow, episodes: int) -> str:
    """One line per closed-loop selection."""
    who = "starting policy" if row.update < 0 else f"after update {row.update}"
    mark = " (published)" if row.published else ""
    return (
        f"selection, {who}: survival {percent(row.survival)} on {episodes} episodes, "
        f"normalized distance {number(row.normalized_distance)}, pose reward "
        f"{number(row.normalized_pose_reward)} of the expert's{mark}"
    )


def selections_table(result: FinetuneResult, episodes: int) -> Table:
    """The expert, the starting policy and every selection, the published one marked."""
    table = Table(
        title=f"Fine-tuning on {result.env_id}: {episodes} selection episodes "
        f"each (expert survives {percent(result.expert.get('survival', math.nan))})"
    )
    for column in (
        "policy",
        "env steps",
        "survival",
        "norm. distance",
        "norm. pose reward",
        "published",
    ):
        table.add_column(column, justify="right", no_wrap=True)
    best = result.best()
    for row in result.selections:
        name = "start" if row.update < 0 else f"update {row.update}"
        table.add_row(
            name,
            str(row.env_steps),
            percent(row.survival),
            number(row.normalized_distance),
            number(row.normalized_pose_reward),
            "yes" if row is best else "",
        )
    return table


def finetune_command(
    policy: Annotated[
        str,
        typer.Option(
            help="The policy to start from: a policy or training "
            "run directory, runs:/<id>/policy or models:/NAME/VERSION."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="New directory for checkpoints, the policy and the report.")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Config overrides key=value (pipeline finetune --show-config lists the keys)."
        ),
    ] = None,
    env: Annotated[str | None, typer.Option(help="Environment (default: the policy's).")] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Fine-tuning YAML config; default: the env's measured recipe."),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(help="Environment steps in all (steps); with --resume, more extend the run."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed (seed).")] = None,
    anchor_data: Annotated[
        Path | None,
        typer.Option(help="Demonstrations (.h5) for the anchor (sets anchor.source=demos)."),
    ] = None,
    eval_every: Annotated[
        int | None, typer.Option(help="Policy updates between selections (selection.every).")
    ] = None,
    eval_episodes: Annotated[
        int | None, typer.Option(help="Episodes per selection (selection.episodes).")
    ] = None,
    eval_seed: Annotated[
        int | None, typer.Option(help="First selection seed (selection.seed).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Rollout workers (processes or Ray actors).")] = 2,
    backend: BackendKind = "local",
    ray_address: RayAddress = None,
    resume: Resume = False,
    no_track: NoTrack = False,
    tracking_uri: TrackingUri = None,
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
    show_config: ShowConfig = False,
) -> None:
    """Reward fine-tuning: PPO from a learned policy, anchored to demonstrations.

    The policy becomes the mean of a Gaussian with a small learned spread; a critic is
    warmed up on its rollouts, then PPO improves the environment's reward while a decaying
    behaviour-cloning loss keeps the gait. The deterministic policy that does best on the
    selection seeds is published as OUT/policy.
    """
    from pipeline.algorithms.finetune_config import resolve_finetune_config
    from pipeline.rollout.policy_source import local_policy_env

    if json_out is not None:
        check_output_path(json_out, "--json", (".json",), overwrite=overwrite)
    options = {
        "steps": steps,
        "seed": seed,
        "selection.every": eval_every,
        "selection.episodes": eval_episodes,
        "selection.seed": eval_seed,
    }
    if anchor_data is not None:
        options["anchor.source"] = "demos"
    env_id = env or local_policy_env(policy)
    cfg = resolve_finetune_config(config, overrides or [], env_id=env_id, options=options)
    console = make_console()
    if show_config:
        print_configs(console, {"fine-tuning": cfg})
        return
    run_finetune_command(
        policy,
        out,
        cfg,
        env,
        anchor_data,
        workers,
        (backend, ray_address),
        resume,
        (no_track, tracking_uri),
        json_out,
        console,
    )


def run_finetune_command(
    policy: str,
    out: Path,
    config: FinetuneConfig,
    env: str | None,
    anchor_data: Path | None,
    workers: int,
    cluster: tuple[str, str | None],
    resume: bool,
    tracking: tuple[bool, str | None],
    json_path: Path | None,
    console: Console,
) -> FinetuneResult:
    """Check everything, then run and print."""
    from pipeline.algorithms.finetune import FinetuneRequest, check_request, run_checked
    from pipeline.rollout.cluster import cluster_session, parse_backend
    from pipeline.tracking import prepare

    no_track, tracking_uri = tracking
    request = FinetuneRequest(
        policy=policy,
        out=out,
        config=config,
        env_id=env,
        anchor_data=anchor_data,
        workers=workers,
        resume=resume,
    )
    env_id = check_request(request)
    backend = parse_backend(*cluster)
    uri = None if no_track else prepare(tracking_uri)
    request = replace(request, backend=backend, tracking_uri=uri)
    episodes = request.config.selection.episodes

    def on_update(row: UpdateRow) -> None:
        console.print(update_line(row), highlight=False)

    def on_selection(row: SelectionRow) -> None:
        console.print(selection_line(row, episodes), highlight=False)

    with cluster_session(backend, uri):
        result = run_checked(request, env_id, on_update, on_selection)
    console.print(selections_table(result, episodes))
    console.print(f"policy: {result.policy_dir}")
    if result.run_id:
        console.print(f"mlflow run: {result.run_id} ({uri})")
    if json_path is not None:
        write_json(json_path, {"command": "finetune", **asdict(result)})
        console.print(f"json: {json_path}")
    return result
