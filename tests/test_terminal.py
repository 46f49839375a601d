"""What the user sees on the terminal: help, error lines, progress in logs, no library noise."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.cli import main
from pipeline.cli.progress import LOG_WIDTH, StageProgress, make_console
from pipeline.core.errors import PipelineError
from pipeline.training.config import load_config

# Start-up chatter of TensorFlow, Keras and MLflow that must never reach the user.
NOISE = (
    "absl::InitializeLog",
    "oneDNN custom operations",
    "Could not find cuda drivers",
    "cuInit",
    "shuffle=True",
    "Successfully registered model",
    "Created version",
    "UserWarning",
    "WARNING:",
)


def _help(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([*args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["rollout"],
        ["record"],
        ["train"],
        ["evaluate"],
        ["quickstart"],
        ["inspect"],
        ["export"],
        ["import"],
        ["envs"],
    ],
)
def test_help_shows_no_value_type_for_flags(capsys, command):
    code, out, _ = _help(capsys, *command, "--help")
    assert code == 0
    assert "--help" in out
    assert "<bool>" not in out


def test_bare_pipeline_shows_help_without_an_empty_error(capsys):
    code, out, err = _help(capsys)
    assert code == 2
    assert "Usage" in out and "record" in out
    assert "error" not in err


def test_record_help_shows_the_recording_defaults(capsys, monkeypatch):
    from pipeline.stages.record import RecordConfig

    monkeypatch.setenv("COLUMNS", "250")  # one line per option, no wrapped defaults
    code, out, _ = _help(capsys, "record", "--help")
    assert code == 0
    defaults = {f.name: f.default for f in fields(RecordConfig)}
    rows = {m.group(1): m.group(2) for m in re.finditer(r"(--[a-z-]+) .*?\[default: (.+?)\]", out)}
    assert rows["--env"] == defaults["env_id"]
    assert rows["--expert"] == defaults["expert"]
    assert rows["--seed"] == str(defaults["seed"])
    assert rows["--noise"] == str(defaults["noise"])
    assert rows["--keep-failed"] == ("keep-failed" if defaults["keep_failed"] else "drop-failed")
    assert rows["--episodes"] == str(defaults["episodes"])
    assert rows["--workers"] == str(defaults["workers"])
    assert defaults["compression"] is None and rows["--compression"].startswith("(gzip; ")
    assert rows["--start-phase"] == "(random)"
    assert "episodes + 10" in rows["--max-attempts"]


def test_mistyped_override_is_named_not_the_yaml_file(tmp_path, capsys):
    config = tmp_path / "walk.yaml"
    config.write_text("optimizer:\n  learning_rate: 0.001\n")
    code = main(["train", "--data", str(tmp_path / "x.h5"), "--config", str(config),
                 "optimizer.learnig_rate=3e-4"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: override 'optimizer.learnig_rate=3e-4': ")
    assert "did you mean 'learning_rate'" in err
    assert str(config) not in err
    with pytest.raises(PipelineError, match=r"^override 'model.name=foo': model: unknown name"):
        load_config(config, ["model.name=foo"])
    with pytest.raises(PipelineError, match=r"^override 'optimizer.learning_rate=-1': "):
        load_config(config, ["optimizer.learning_rate=-1"])


def test_mistake_in_the_yaml_file_still_names_the_file(tmp_path):
    config = tmp_path / "walk.yaml"
    config.write_text("optimizer:\n  learnig_rate: 0.001\n")
    with pytest.raises(PipelineError, match=rf"^{re.escape(str(config))}: optimizer.learnig_rate"):
        load_config(config, ["seed=3"])


def test_inspect_prints_plain_arguments_and_the_random_start_phase(tmp_path, capsys):
    from pipeline.stages.record import RecordConfig, record

    path = tmp_path / "walk.h5"
    record(RecordConfig(out=path, episodes=1, episode_seconds=0.3))
    code = main(["inspect", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("recording arguments:"))
    assert "start_phase=random" in line and "env_id=sim/HumanoidWalk-v0" in line
    assert "{'" not in out and "None" not in line


def test_action_error_plot_shows_the_episodes_still_running():
    from pipeline.reports.evaluation_plots import action_error_figure
    from pipeline.rollout.episodes import EpisodeResult, summarize

    def episode(curve: tuple[float, ...]) -> EpisodeResult:
        return EpisodeResult(seed=0, steps=1, survived_s=len(curve), fell=False, distance=1.0,
                             ret=1.0, pose_reward=None, wall_s=1.0, action_error=0.1,
                             action_error_by_second=curve)  # fmt: skip

    summary = summarize([episode((0.1, 0.2, 0.3)), episode((0.1,)), episode((0.2, 0.4))])
    assert summary["episodes_by_second"] == [3, 2, 1]
    fig = action_error_figure(summary["action_error_by_second"], summary["episodes_by_second"],
                              validation_loss=0.05)  # fmt: skip
    counts = next(ax for ax in fig.axes if ax.get_ylabel() == "episodes still running")
    assert [bar.get_height() for bar in counts.patches] == [3, 2, 1]


def test_stage_progress_prints_plain_lines_when_not_a_terminal():
    text = io.StringIO()
    console = Console(file=text, force_terminal=False)
    with StageProgress(console, interval_s=0.0) as progress:
        first = progress.add("train epochs", total=3)
        second = progress.add("evaluate learner", total=2, start=False)
        progress.update(first, completed=1, note="loss 0.5")
        progress.update(first, completed=3, note="loss 0.1")
        progress.update(second, advance=1)
    lines = text.getvalue().splitlines()
    assert lines[0] == "train epochs: started (3)"
    assert lines[1].startswith("train epochs: 1/3 loss 0.5 (")
    assert lines[2].startswith("train epochs: 3/3 loss 0.1 (") and lines[2].endswith(" done")
    assert lines[3] == "evaluate learner: started (2)"
    assert lines[4] == "evaluate learner: 1/2 (0 s)"
    assert lines[5] == "evaluate learner: 1/2 (0 s) done"  # ended with the block
    assert len(lines) == 6


def test_stage_progress_limits_plain_lines_to_one_per_interval():
    text = io.StringIO()
    with StageProgress(Console(file=text, force_terminal=False), interval_s=3600) as progress:
        stage = progress.add("record", total=None)
        for n in range(100):
            progress.update(stage, completed=n + 1)
    assert text.getvalue().splitlines() == ["record: started", "record: 100 (0 s) done"]


def test_console_for_a_log_does_not_wrap_at_80_columns(monkeypatch, capsys):
    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()
    assert not console.is_terminal and console.width == LOG_WIDTH
    long = "mlflow ui --backend-store-uri sqlite:///" + "x" * 150 + "/mlflow.db"
    console.print(long)
    assert capsys.readouterr().out == long + "\n"


def _pipeline(cwd: Path, *args: str) -> str:
    """Run the installed ``pipeline`` with output to pipes, as a log would get it."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "MLFLOW_TRACKING_URI")}
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert not [noise for noise in NOISE if noise in output], output
    return proc.stdout


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """record, train (registered in MLflow), train --overfit-batch and evaluate, as a
    user would run them, stdout and stderr to pipes."""
    cwd = tmp_path_factory.mktemp("piped")
    outputs = {
        "record": _pipeline(cwd, "record", "--out", "walk.h5", "--episodes", "2",
                            "--episode-seconds", "1"),
        "train": _pipeline(cwd, "train", "--data", "walk.h5", "--out", "run",
                           "--tracking-uri", f"sqlite:///{cwd}/mlflow.db", "--register",
                           "walk-test", "training.epochs=2"),
        "overfit": _pipeline(cwd, "train", "--data", "walk.h5", "--overfit-batch", "--no-track"),
        "evaluate": _pipeline(cwd, "evaluate", "--policy", "run", "--episodes", "2",
                              "--episode-seconds", "1", "--workers", "2", "--no-track"),
    }  # fmt: skip
    return outputs


def test_piped_commands_print_only_their_own_lines(piped_run):
    """TensorFlow's start-up log (also in spawned workers), Keras' shuffle warning and
    MLflow's registration lines are checked absent in ``_pipeline``."""
    assert "overfit one batch" in piped_run["overfit"]
    assert "registered model: walk-test" in piped_run["train"]


def test_piped_commands_print_plain_progress(piped_run):
    record = piped_run["record"].splitlines()
    assert "record episodes: started" in record
    # Each number says what it counts.
    assert any(re.match(r"record episodes: 2/2 kept, \d+ dropped \(the expert fell\), "
                        r"\d+ steps/s \(\d+ s\) done$", line) for line in record)  # fmt: skip
    train = piped_run["train"].splitlines()
    assert "train epochs: started (2)" in train
    assert any(re.match(r"train epochs: 2/2 loss .* done$", line) for line in train)
    evaluate = piped_run["evaluate"].splitlines()
    assert "evaluate learner: started (2)" in evaluate
    assert any(re.match(r"evaluate learner: 2/2 falls \d .* done$", line) for line in evaluate)
    # One line per message: a long path or command is not cut at 80 columns.
    mlflow_line = next(line for line in train if line.startswith("mlflow run:"))
    assert mlflow_line.endswith("mlflow.db") and len(mlflow_line) > 80
