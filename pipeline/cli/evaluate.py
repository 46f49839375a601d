"""``pipeline evaluate``: progress while episodes run, then the results table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from pipeline.cli.options import (
    ActionNoiseOption,
    BackendKind,
    EpisodeSeconds,
    EpisodeSeed,
    EpisodesPerPolicy,
    JsonOut,
    NoTrack,
    Overwrite,
    PolicySource,
    Push,
    RayAddress,
    TrackingUri,
    Workers,
)
from pipeline.cli.progress import StageProgress, make_console

if TYPE_CHECKING:
    from pipeline.rollout.episodes import EpisodeResult
    from pipeline.stages.evaluate import (
        EvaluateReport,
        EvaluateRequest,
    )


def run_evaluate_command(
    request: EvaluateRequest,
    no_track: bool,
    tracking_uri: str | None,
    console: Console,
) -> EvaluateReport:
    """Run the stage (which checks the request, then the tracking store) with a progress
    bar per policy, then print the table and where things went."""
    from pipeline.stages.evaluate import EXPERT, LEARNER, RANDOM, evaluate_tracked
    from pipeline.stages.evaluate.tables import results_table, summary_lines, video_lines

    runs = (LEARNER, EXPERT, RANDOM) if request.compare_expert else (LEARNER,)
    with StageProgress(console) as progress:
        # Started by their first episode: a log shows when each policy's episodes begin
        # (and a refused request shows none).
        bars = {name: progress.add(f"evaluate {name}", total=request.episodes, start=False)
                for name in runs}  # fmt: skip
        falls = dict.fromkeys(runs, 0)

        def advance(name: str, result: EpisodeResult) -> None:
            falls[name] += result.fell
            progress.update(bars[name], advance=1, note=f"falls {falls[name]}")

        report, tracking_uri = evaluate_tracked(request, no_track, tracking_uri, advance)
    console.print(results_table(report))
    for line in summary_lines(report):
        console.print(line)
    for line in video_lines(report):
        console.print(line)
    for warning in report.warnings:
        console.print(f"warning: {warning}", markup=False)
    if request.out is not None:
        console.print(f"report and plots: {request.out}")
    if request.json_path is not None:
        console.print(f"json: {request.json_path}")
    if report.eval_run_id:
        console.print(f"mlflow run: {report.eval_run_id} ({tracking_uri}); look at it with: "
                      f"mlflow ui --backend-store-uri {tracking_uri}")  # fmt: skip
    return report


def evaluate_command(
    policy: PolicySource,
    env: Annotated[
        str | None, typer.Option(help="Environment (default: the one the policy trained on).")
    ] = None,
    episodes: EpisodesPerPolicy = 40,
    seed: EpisodeSeed = 1000,
    workers: Workers = 2,
    backend: BackendKind = "local",
    ray_address: RayAddress = None,
    start_phase: Annotated[
        str | None,
        typer.Option(help="Motion envs only: 'random' (default), '0' or a phase in [0, 1)."),
    ] = None,
    episode_seconds: EpisodeSeconds = None,
    compare_expert: Annotated[
        bool, typer.Option(help="Also run the expert and a random policy on the same seeds.")
    ] = False,
    push: Push = None,
    action_noise: ActionNoiseOption = 0.0,
    video: Annotated[
        Path | None,
        typer.Option(
            help="Video (.mp4/.gif) of the learner on the first seed the expert (with "
            "--compare-expert; else the learner) survives, <name>_vs_expert beside it with "
            "--compare-expert, and <name>_first_fall: the last 3 s before the learner's "
            "first fall, if it fell."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Directory for the report and plots.")] = None,
    no_track: NoTrack = False,
    tracking_uri: TrackingUri = None,
    json_out: JsonOut = None,
    overwrite: Overwrite = False,
) -> None:
    """Roll a trained policy out and measure how well it walks.

    Survival, distance, speed, pose reward and action error against the expert, with 95%
    intervals; --compare-expert runs the expert and a random policy on the same seeds.
    """
    from pipeline.rollout.cluster import parse_backend
    from pipeline.stages.evaluate import EvaluateRequest

    request = EvaluateRequest(policy=policy, env_id=env, episodes=episodes, seed=seed,
                              workers=workers, start_phase=start_phase,
                              backend=parse_backend(backend, ray_address),
                              episode_seconds=episode_seconds, compare_expert=compare_expert,
                              push=push, action_noise=action_noise, video=video, out=out,
                              json_path=json_out, overwrite=overwrite)  # fmt: skip
    # With --no-track an MLflow policy URI still resolves against --tracking-uri.
    run_evaluate_command(request, no_track, tracking_uri, make_console())
