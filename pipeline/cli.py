"""The ``pipeline`` command line: thin commands that parse options and call the stages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pipeline.errors import PipelineError
from pipeline.progress import make_console

app = typer.Typer(
    name="pipeline",
    help="Humanoid imitation learning: roll out, record, train and evaluate policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _flags_without_type() -> None:
    """Leave the ``<bool>`` out of the help of flags (``--help``, ``--overwrite``).

    Typer 0.29's rich help prints the value type of every option, flags included, while
    its plain help (like click's) prints none for options that take no value.
    """
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "flags_hidden", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else shown(self, ctx)

    display_type_rich.flags_hidden = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_type()

TrackingUri = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)."),
]
"""The ``--tracking-uri`` option every tracked command shares."""

Overwrite = Annotated[bool, typer.Option(help="Replace existing output files (refused otherwise).")]
"""The ``--overwrite`` option of every command that writes files."""


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
        Path | None,
        typer.Option(
            help="Video (.mp4/.gif) of the first episode the policy survives; when it fell "
            "anywhere also <name>_first_fall: the last 3 s before its first fall."
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write per-episode metrics and summary.")
    ] = None,
    overwrite: Overwrite = False,
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
        overwrite=overwrite,
    )
    run_rollout_command(request, make_console())


@app.command()
def record(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Demonstration file (.h5) to write.")],
    env: Annotated[str, typer.Option(help="Environment id.")] = "sim/HumanoidWalk-v0",
    expert: Annotated[
        str, typer.Option(help="'expert' (the env's shipped expert) or an expert name.")
    ] = "expert",
    episodes: Annotated[
        int, typer.Option(help="Episodes to add (with --resume: ignored, the file's target).")
    ] = 50,
    seed: Annotated[
        int, typer.Option(help="Base seed: attempt n uses a seed derived from (seed, n).")
    ] = 0,
    workers: Annotated[int, typer.Option(help="Worker processes running whole episodes.")] = 1,
    start_phase: Annotated[
        str | None,
        typer.Option(
            help="Walk only: 'random' (diverse demos), '0' or a phase in [0, 1).",
            show_default="random",
        ),
    ] = None,
    episode_seconds: Annotated[
        float | None,
        typer.Option(
            help="Walk only: episode length in simulated seconds.", show_default="the env's, 20"
        ),
    ] = None,
    noise: Annotated[
        float, typer.Option(help="DART noise on executed actions, in expert action scales.")
    ] = 0.0,
    keep_failed: Annotated[
        bool,
        typer.Option("--keep-failed/--drop-failed", help="Keep episodes where the expert fell."),
    ] = False,
    append: Annotated[bool, typer.Option(help="Add episodes to a compatible file.")] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing --out file (and --json file).")
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted recording at its next attempt.")
    ] = False,
    compression: Annotated[str, typer.Option(help="gzip[:level], lzf or none.")] = "gzip",
    max_attempts: Annotated[
        int | None,
        typer.Option(help="Give up after this many attempts.", show_default="10 x episodes + 10"),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the recording summary.")
    ] = None,
) -> None:
    """Record expert demonstrations into a crash-safe HDF5 file."""
    from pipeline.record import RecordConfig
    from pipeline.record_command import run_record_command

    modes = [name for name, on in (("append", append), ("overwrite", overwrite),
                                   ("resume", resume)) if on]  # fmt: skip
    if len(modes) > 1:
        raise PipelineError(f"--{modes[0]} and --{modes[1]} exclude each other")
    explicit = {"env_id": env, "expert": expert, "seed": seed, "noise": noise,
                "start_phase": start_phase, "episode_seconds": episode_seconds,
                "keep_failed": keep_failed}  # fmt: skip
    # With --resume the file supplies what the command line leaves at its default.
    options = {"env_id": "env"}
    given = {k for k, v in explicit.items()
             if v is not None and _from_command_line(ctx, options.get(k, k))}  # fmt: skip
    config = RecordConfig(
        out=out,
        episodes=episodes,
        workers=workers,
        mode=modes[0] if modes else "create",  # type: ignore[arg-type]
        compression=compression,
        max_attempts=max_attempts,
        **{k: v for k, v in explicit.items() if v is not None},
    )
    run_record_command(config, given, json_out, make_console())


@app.command()
def train(
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
    seed: Annotated[int | None, typer.Option(help="Seed (overrides the config's).")] = None,
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
    no_track: Annotated[
        bool, typer.Option("--no-track", help="Train without MLflow tracking.")
    ] = False,
    tracking_uri: TrackingUri = None,
    register: Annotated[
        str | None, typer.Option(help="Register the policy in the MLflow model registry.")
    ] = None,
    deterministic: Annotated[
        bool, typer.Option(help="TF op determinism: same seed, identical weights on CPU.")
    ] = False,
    mixed_precision: Annotated[bool, typer.Option(help="float16 compute (GPU).")] = False,
    overfit_batch: Annotated[
        bool, typer.Option(help="Only train on one batch and report if the loss nears 0.")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results.")] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing --json file (never a run directory).")
    ] = False,
) -> None:
    """Train a policy on recorded demonstrations (behaviour cloning), tracked in MLflow."""
    from pipeline.train_command import resolve_train_config, run_train_command

    cfg = resolve_train_config(config, overrides or [], seed, no_track, tracking_uri, register,
                               deterministic, mixed_precision,
                               resume_out=out if resume else None, data=data)  # fmt: skip
    if overfit_batch:
        from pipeline.overfit import run_overfit_command

        code = run_overfit_command(data, cfg, json_out, make_console(), overwrite)
        if code:
            raise typer.Exit(code)
        return
    run_train_command(data, cfg, out, resume, json_out, make_console(), overwrite)


@app.command()
def evaluate(
    policy: Annotated[
        str,
        typer.Option(
            help="Policy directory, training run directory, runs:/<id>/policy or "
            "models:/NAME/VERSION."
        ),
    ],
    env: Annotated[
        str | None, typer.Option(help="Environment (default: the one the policy trained on).")
    ] = None,
    episodes: Annotated[int, typer.Option(help="Episodes per policy (>= 1).")] = 40,
    seed: Annotated[int, typer.Option(help="Episode i is reset with seed + i.")] = 1000,
    workers: Annotated[int, typer.Option(help="Worker processes running whole episodes.")] = 2,
    start_phase: Annotated[
        str | None,
        typer.Option(help="Walk only: 'random' (default), '0' or a phase in [0, 1)."),
    ] = None,
    episode_seconds: Annotated[
        float | None, typer.Option(help="Walk only: episode time limit in simulated seconds.")
    ] = None,
    compare_expert: Annotated[
        bool, typer.Option(help="Also run the expert and a random policy on the same seeds.")
    ] = False,
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
    no_track: Annotated[
        bool, typer.Option("--no-track", help="Evaluate without MLflow tracking.")
    ] = False,
    tracking_uri: TrackingUri = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report.")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Roll a trained policy out in the simulation: survival, distance, error vs the expert."""
    from pipeline.evaluate import EvaluateRequest, check_request
    from pipeline.evaluate_command import run_evaluate_command
    from pipeline.tracking import prepare

    request = EvaluateRequest(policy=policy, env_id=env, episodes=episodes, seed=seed,
                              workers=workers, start_phase=start_phase,
                              episode_seconds=episode_seconds, compare_expert=compare_expert,
                              video=video, out=out, json_path=json_out,
                              overwrite=overwrite)  # fmt: skip
    check_request(request)
    uri = None if no_track else prepare(tracking_uri)
    # With --no-track an MLflow policy URI still resolves against --tracking-uri.
    run_evaluate_command(request, uri, make_console(), lookup_uri=tracking_uri)


@app.command()
def quickstart(
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
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    no_track: Annotated[
        bool, typer.Option("--no-track", help="Run without MLflow tracking.")
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Record walking demonstrations, train the default policy, evaluate it against the expert."""
    from pipeline.quickstart import QuickstartConfig
    from pipeline.quickstart_command import run_quickstart_command
    from pipeline.tracking import prepare

    config = QuickstartConfig(out=out, demos=demos, noise=noise, epochs=epochs,
                              eval_episodes=eval_episodes, seed=seed, eval_seed=eval_seed,
                              workers=workers)  # fmt: skip
    config.check()
    uri = None if no_track else prepare(tracking_uri)
    run_quickstart_command(config, uri, make_console())


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="Demonstration file (.h5).")],
    verify: Annotated[
        bool, typer.Option(help="Re-compute every checksum; exit 1 if any episode is bad.")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report.")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Show what a demonstration file holds: episodes, steps, survival, ranges, arguments."""
    from pipeline.record_command import run_inspect_command

    code = run_inspect_command(path, verify, json_out, make_console(), overwrite)
    if code:
        raise typer.Exit(code)


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="Demonstration file (.h5).")],
    out: Annotated[Path, typer.Option(help="Minari datasets root directory to write into.")],
    format: Annotated[str, typer.Option(help="Interchange format (only 'minari').")] = "minari",
    dataset_id: Annotated[
        str | None, typer.Option(help="Minari id, e.g. humanoid/walk/expert-v0 (default: derived).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset.")] = False,
) -> None:
    """Export a demonstration file to another format (a Minari dataset)."""
    from datasets.interchange import MinariExistsError, export_minari

    _check_format(format)
    try:
        where = export_minari(path, out, dataset_id, overwrite=overwrite)
    except MinariExistsError as exc:
        raise PipelineError(f"--out {exc} (use --overwrite)") from None
    make_console().print(f"minari dataset: {where}")
    make_console().print(f"load it with: MINARI_DATASETS_PATH={out} python -c \"import minari; "
                    f"print(minari.load_dataset('{where.relative_to(out)}'))\"")  # fmt: skip


@app.command(name="import")
def import_(
    source: Annotated[str, typer.Argument(help="Minari dataset directory or id.")],
    out: Annotated[Path, typer.Option(help="Demonstration file (.h5) to write.")],
    format: Annotated[str, typer.Option(help="Interchange format (only 'minari').")] = "minari",
    datasets_root: Annotated[
        Path | None, typer.Option(help="Minari datasets root for an id (default: Minari's).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Import a dataset from another format (Minari) into a demonstration file."""
    from datasets.interchange import import_minari
    from pipeline.outputs import check_output_path

    _check_format(format)
    check_output_path(out, "--out", overwrite=overwrite)
    where = import_minari(source, out, datasets_root=datasets_root, overwrite=overwrite)
    make_console().print(f"dataset: {where}")


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` was given rather than left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _check_format(value: str) -> None:
    if value != "minari":
        raise PipelineError(f"--format: unknown format '{value}' (supported: minari)")


@app.command()
def envs(
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the list as JSON.")] = None,
    overwrite: Overwrite = False,
) -> None:
    """List the environments and their shipped experts."""
    from pipeline.rollout_command import list_envs

    list_envs(make_console(), json_out, overwrite)


def _report(exc: Exception) -> int:
    """Print a known error as one line and return its exit code; re-raise anything else."""
    from datasets import DatasetError
    from sim import SimError

    if isinstance(exc, PipelineError | SimError | DatasetError):
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
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
            f"[red]error:[/red] {exc.format_message()}{hint}", highlight=False, soft_wrap=True
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


if __name__ == "__main__":
    sys.exit(main())
