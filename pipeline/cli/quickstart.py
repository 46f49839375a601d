"""``pipeline quickstart``: one progress bar per stage, then the results and where they are."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from pipeline.cli.options import NoTrack, TrackingUri, Workers
from pipeline.cli.progress import StageProgress, make_console
from pipeline.cli.record import progress_note

if TYPE_CHECKING:
    from pipeline.workflows.quickstart import QuickstartConfig, QuickstartResult


def run_quickstart_command(
    config: QuickstartConfig, tracking_uri: str | None, console: Console
) -> QuickstartResult:
    """Run the quickstart with progress and print what a newcomer needs to see."""
    from pipeline.stages.evaluate.tables import results_table, summary_lines, video_lines
    from pipeline.workflows.quickstart import quickstart

    config.check()
    eval_total = 3 * config.eval_episodes
    with StageProgress(console) as progress:
        bars = {
            "record": progress.add("1/3 record demonstrations", total=config.demos, start=False),
            "train": progress.add("2/3 train", total=config.epochs, start=False),
            "evaluate": progress.add("3/3 evaluate (learner, expert, random)", total=eval_total,
                                     start=False),
        }  # fmt: skip

        def on_stage(name: str) -> None:
            for earlier in list(bars)[: list(bars).index(name)]:
                progress.finish(bars[earlier])  # e.g. training stopped early
            progress.start(bars[name])

        def on_episode(summary: Any, episode: Any) -> None:
            progress.update(bars["record"], completed=summary.committed,
                            note=progress_note(summary))  # fmt: skip

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            val = metrics.get("val/loss", math.nan)
            progress.update(bars["train"], completed=epoch + 1, note=f"val loss {val:.4f}")

        def on_eval(name: str, result: Any) -> None:
            progress.update(bars["evaluate"], advance=1, note=name)

        result = quickstart(config, tracking_uri, on_stage, on_episode, on_epoch, on_eval)
    report = result.report
    console.print(results_table(report))
    for line in summary_lines(report):
        console.print(line)
    seconds = result.record_s + result.train_s + result.evaluate_s
    console.print(f"time: record {result.record_s:.0f} s, train {result.train_s:.0f} s, "
                  f"evaluate {result.evaluate_s:.0f} s, total {seconds / 60:.1f} min")  # fmt: skip
    console.print(f"outputs: {result.directory}")
    for line in video_lines(report):
        console.print(line)
    if tracking_uri is not None:
        console.print(f"look at the runs with: mlflow ui --backend-store-uri {tracking_uri}")
    return result


def quickstart_command(
    out: Annotated[
        Path, typer.Option(help="Parent directory; each run writes a new time-stamped one.")
    ] = Path("outputs/quickstart"),
    demos: Annotated[int, typer.Option(help="Expert demonstrations to record.")] = 100,
    noise: Annotated[
        float, typer.Option(help="DART noise on executed actions (expert action scales).")
    ] = 0.005,
    epochs: Annotated[
        int, typer.Option(help="Training epochs (the walk recipe keeps the last epoch's weights).")
    ] = 40,
    eval_episodes: Annotated[int, typer.Option(help="Evaluation episodes per policy.")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of recording and training.")] = 0,
    eval_seed: Annotated[int, typer.Option(help="First held-out evaluation seed.")] = 1000,
    workers: Workers = 2,
    no_track: NoTrack = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Record, train and evaluate a walking policy in one go.

    Records expert walking demonstrations, trains the default policy on them and evaluates
    it against the expert and a random policy; each run writes a new folder under --out.
    """
    from pipeline.tracking import prepare
    from pipeline.workflows.quickstart import QuickstartConfig

    config = QuickstartConfig(out=out, demos=demos, noise=noise, epochs=epochs,
                              eval_episodes=eval_episodes, seed=seed, eval_seed=eval_seed,
                              workers=workers)  # fmt: skip
    config.check()
    uri = None if no_track else prepare(tracking_uri)
    run_quickstart_command(config, uri, make_console())
