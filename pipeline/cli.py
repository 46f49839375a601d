"""The ``pipeline`` command line: thin commands that parse options and call the stages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pipeline.errors import PipelineError

app = typer.Typer(
    name="pipeline",
    help="Humanoid imitation learning: roll out, record, train and evaluate policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


@app.command()
def rollout(
    env: Annotated[str, typer.Option(help="Environment id, e.g. sim/HumanoidWalk-v0.")] = (
        "sim/HumanoidWalk-v0"
    ),
    policy: Annotated[
        str, typer.Option(help="'expert' (the env's shipped expert), 'random' or an expert name.")
    ] = "expert",
    episodes: Annotated[int, typer.Option(help="Number of episodes (>= 1).")] = 5,
    seed: Annotated[int, typer.Option(help="Episode i is reset with seed + i.")] = 0,
    start_phase: Annotated[
        str | None,
        typer.Option(help="Walk only: '0' (default), 'random', or a phase in [0, 1)."),
    ] = None,
    episode_seconds: Annotated[
        float | None, typer.Option(help="Walk only: episode time limit in simulated seconds.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes running whole episodes.")] = 1,
    video: Annotated[
        Path | None, typer.Option(help="Write the first episode as .mp4 or .gif.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write per-episode metrics and summary.")
    ] = None,
) -> None:
    """Roll a policy out in a simulated humanoid and report how it walks."""
    from pipeline.rollout_command import RolloutRequest, run_rollout_command

    request = RolloutRequest(
        env_id=env,
        policy=policy,
        episodes=episodes,
        seed=seed,
        start_phase=start_phase,
        episode_seconds=episode_seconds,
        workers=workers,
        video=video,
        json_path=json_out,
    )
    run_rollout_command(request, Console())


@app.command()
def envs(
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the list as JSON.")] = None,
) -> None:
    """List the environments and their shipped experts."""
    from pipeline.rollout_command import list_envs

    list_envs(Console(), json_out)


def _report(exc: Exception) -> int:
    """Print a known error as one line and return its exit code; re-raise anything else."""
    from sim import SimError

    if isinstance(exc, PipelineError | SimError):
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 2
    # Typer vendors its own copy of click in recent releases, so click's exception classes
    # are recognised by their interface rather than by import.
    if type(exc).__name__ == "Abort":
        console.print("[red]aborted[/red]")
        return 130
    if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        console.print(
            f"[red]error:[/red] {exc.format_message()}{hint}", highlight=False, soft_wrap=True
        )
        return int(exc.exit_code)
    raise exc


def main(argv: list[str] | None = None) -> int:
    """Entry point: one clear error line and exit code 2 for any input problem."""
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    try:
        result: Any = command.main(args=args, prog_name="pipeline", standalone_mode=False)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        return 130
    except Exception as exc:
        return _report(exc)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
