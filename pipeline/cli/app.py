"""The ``pipeline`` entry point: the Typer app with every command registered, and one clear
error line (exit 2) for any input problem. The commands live one per module beside it."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console

from pipeline.cli import (
    compare,
    dagger,
    data,
    envs,
    evaluate,
    finetune,
    help_format,
    motion,
    policy,
    quickstart,
    record,
    report,
    rollout,
    train,
    tune,
    visualize,
)
from pipeline.core.errors import PipelineError

app = typer.Typer(
    name="pipeline",
    help="Humanoid imitation learning: roll out, record, train and evaluate policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
help_format.install()

# Registered in the order `pipeline --help` lists them.
app.command(name="rollout")(rollout.rollout_command)
app.command(name="record")(record.record_command)
app.command(name="train")(train.train_command)
app.command(name="evaluate")(evaluate.evaluate_command)
app.command(name="quickstart")(quickstart.quickstart_command)
app.command(name="dagger")(dagger.dagger_command)
app.command(name="finetune")(finetune.finetune_command)
app.command(name="compare")(compare.compare_command)
app.command(name="tune")(tune.tune_command)
app.command(name="visualize")(visualize.visualize_command)
app.command(name="report")(report.report_command)
app.add_typer(motion.motion_app, name="motion")
app.add_typer(policy.policy_app, name="policy")
app.command(name="inspect")(data.inspect_command)
app.command(name="export")(data.export_command)
app.command(name="import")(data.import_command)
app.command(name="envs")(envs.envs_command)


def _report(exc: Exception) -> int:
    """Print a known error as one line and return its exit code; re-raise anything else."""
    from rich.markup import escape

    from datasets import DatasetError
    from sim import SimError

    if isinstance(exc, PipelineError | SimError | DatasetError):
        # Escaped: a message may hold brackets (paths, "IMPULSE[@TIME]") rich would eat.
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    # Typer vendors its own copy of click in recent releases, so click's exception classes
    # are recognised by their interface rather than by import.
    if type(exc).__name__ == "NoArgsIsHelpError":
        # Bare ``pipeline``: the rich help has printed itself; plain help is the message.
        if exc.format_message():  # type: ignore[attr-defined]
            print(exc.format_message())  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    if type(exc).__name__ == "Abort":
        console.print("[red]aborted[/red]")
        return 130
    if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        console.print(
            f"[red]error:[/red] {escape(exc.format_message() + hint)}",
            highlight=False,
            soft_wrap=True,
        )
        return int(exc.exit_code)
    raise exc


def main(argv: list[str] | None = None) -> int:
    """Entry point: one clear error line and exit code 2 for any input problem."""
    import os

    # TensorFlow's C++ start-up log (CPU features, missing CUDA) is noise on the terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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
