"""``pipeline tune`` locally: the space file and its checks, coarse-to-fine narrowing, a
two-stage study on a tiny dataset (trials in their own processes, MLflow runs nested under
the study's), a study killed and resumed, and bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.training.config import load_config
from pipeline.workflows.tune.space import Param, narrow, parse_param

TINY = ["training.epochs=1", "model.hidden_sizes=[16,16]", "data.batch_size=256"]
SPACE = """\
optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}
data.batch_size: {int: [128, 512]}
model.activation: {choice: [relu, tanh]}
"""


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def space(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


# -- the space ---------------------------------------------------------------------------------


def _coarse_study() -> tuple[list[Param], list[tuple[dict, float]]]:
    """Three parameters and eight finished trials with their objective values."""
    lr = Param("optimizer.learning_rate", "log_uniform", 1e-4, 1e-1)
    act = Param("model.activation", "choice", choices=("relu", "tanh", "elu"))
    size = Param("data.batch_size", "int", 16, 512)
    rows = [(1e-3, "relu", 64, 0.1), (2e-3, "tanh", 80, 0.2), (5e-2, "elu", 500, 0.9),
            (1e-4, "elu", 20, 0.8), (3e-2, "relu", 400, 0.7), (4e-4, "elu", 30, 0.6),
            (9e-2, "tanh", 100, 0.5), (2e-4, "relu", 200, 0.4)]  # fmt: skip
    trials = [({"optimizer.learning_rate": v, "model.activation": a, "data.batch_size": b}, value)
              for v, a, b, value in rows]  # fmt: skip
    return [lr, act, size], trials


def test_narrow_keeps_the_best_quarter_on_the_coarse_scale() -> None:
    params, trials = _coarse_study()
    lr = params[0]
    fine_lr, fine_act, fine_size = narrow(params, trials, maximize=False)
    # Best quarter (2 of 8): lr 1e-3 and 2e-3, relu and tanh, batch 64 and 80.
    assert (fine_lr.low, fine_lr.high) == pytest.approx((1e-3, 2e-3))
    assert fine_act.choices == ("relu", "tanh")
    # 64-80 spans under a tenth of 16-512, so it widens to 72 +- 24.8, whole numbers out.
    assert (fine_size.low, fine_size.high) == (47, 97)
    # Maximizing picks the other end; a single point is widened to a tenth of the range
    # (on the log scale for a log parameter).
    (single,) = narrow([lr], [({"optimizer.learning_rate": 1e-2}, 1.0)], maximize=True)
    assert math.log10(single.high / single.low) == pytest.approx(0.3)
    assert single.low < 1e-2 < single.high


def test_a_maximizing_narrow_keeps_the_highest_quarter() -> None:
    """The closed-loop objective is maximized: the fine space is the span of the trials that
    scored highest, not lowest."""
    params, trials = _coarse_study()
    fine_lr, fine_act, fine_size = narrow(params, trials, maximize=True)
    # Highest quarter (2 of 8): scores 0.9 and 0.8, lr 5e-2 and 1e-4, elu both, batch 500, 20.
    assert (fine_lr.low, fine_lr.high) == pytest.approx((1e-4, 5e-2))
    assert fine_act.choices == ("elu",)
    assert (fine_size.low, fine_size.high) == (20, 500)


def _fake_trials(score):
    """``run_trials`` without training: each trial's objective is ``score(params)``."""
    from pipeline.workflows.tune.trial import TrialResult

    def run_trials(tasks, workers, backend):
        for task in tasks:
            value = score(task.params)
            yield task, TrialResult(task.number, task.stage, task.params, value, math.nan,
                                    0.0, 0.0, closed_loop={"survival": value})  # fmt: skip

    return run_trials


@pytest.mark.parametrize("objective", ["closed_loop", "val_loss"])
def test_the_study_narrows_around_and_publishes_its_best_trials(
    run_data, space, tmp_path, monkeypatch, objective
):
    """The closed-loop objective is maximized, the validation loss minimized: the fine stage
    searches where the best coarse trials were and the best trial is the highest (lowest)."""
    import pipeline.workflows.tune.study as study

    sign = 1.0 if objective == "closed_loop" else -1.0  # the better the larger learning rate
    monkeypatch.setattr(study, "run_trials", _fake_trials(
        lambda p: sign * math.log10(p["optimizer.learning_rate"])))  # fmt: skip
    request = study.TuneRequest(data=run_data, space=space, out=tmp_path / "study", trials=8,
                                fine_trials=4, objective=objective,
                                overrides=list(TINY))  # fmt: skip
    result = study.run_tune(request)
    assert result.direction == ("maximize" if objective == "closed_loop" else "minimize")
    coarse = sorted(t["params"]["optimizer.learning_rate"] for t in result.trials
                    if t["stage"] == "coarse")  # fmt: skip
    assert len(coarse) == 8 and len(result.trials) == 12
    # The best quarter of the coarse stage is its two largest learning rates: the fine range
    # spans them (widened to a tenth of the coarse range, on the log scale, if closer).
    fine = {k: v for item in result.stages["fine"] for k, v in item.items()}
    low, high = fine["optimizer.learning_rate"]["log_uniform"]
    middle = math.sqrt(coarse[-2] * coarse[-1])
    assert low == pytest.approx(max(1e-4, min(coarse[-2], middle / 10**0.1)))
    assert high == pytest.approx(min(1e-2, max(coarse[-1], middle * 10**0.1)))
    for trial in result.trials:
        if trial["stage"] == "fine":
            assert low <= trial["params"]["optimizer.learning_rate"] <= high
    best_lr = max(t["params"]["optimizer.learning_rate"] for t in result.trials)
    assert result.best["params"]["optimizer.learning_rate"] == best_lr
    assert result.best["value"] == max(sign * t["value"] for t in result.trials) * sign
    config = load_config(Path(result.best_config))
    assert config.optimizer.learning_rate == pytest.approx(best_lr)
    saved = json.loads((tmp_path / "study" / "tune.json").read_text())
    assert saved["best"]["number"] == result.best["number"]


def test_choices_may_be_lists_and_decode_to_config_values() -> None:
    param = parse_param("model.hidden_sizes", {"choice": [[32, 32], [64]]}, "f")
    dist = param.distribution()
    assert param.decode(dist.choices[1]) == [64]
    assert Param("data.batch_size", "int", 1, 9).decode(4.0) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "file not found"),
        ("optimizer.learning_rate: [1, 2\n", "not valid YAML"),
        ("[1, 2]\n", "expected a mapping"),
        ("optimizer.lr: {uniform: [0.1, 0.2]}\n", "'optimizer.lr'"),
        ("optimizer.learning_rate: {normal: [0.1, 0.2]}\n", "unknown distribution 'normal'"),
        ("optimizer.learning_rate: {uniform: [0.3, 0.2]}\n", "need low < high"),
        ("optimizer.learning_rate: {log_uniform: [0.0, 0.2]}\n", "log_uniform bounds must be > 0"),
        ("data.batch_size: {int: [1.5, 8]}\n", "int bounds must be whole numbers"),
        ("model.activation: {choice: []}\n", "non-empty list"),
        ("model.dropout: {uniform: [0.0, 1.5]}\n", "'model.dropout' = 1.5"),
    ],
)
def test_a_bad_space_is_one_line_before_any_trial(run_data, tmp_path, capsys, text, message):
    path = tmp_path / "space.yaml"
    if text is not None:
        path.write_text(text)
    out = tmp_path / "study"
    code, _, err = cli(capsys, "tune", "--data", str(run_data), "--space", str(path), "--out",
                       str(out), "--no-track")  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert f"--space {path}" in err and message in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trials", "0"], "--trials: must be >= 1"),
        (["--objective", "closed_loop", "--rollout-episodes", "0"], "--rollout-episodes"),
        (["--objective", "walking"], "--objective: 'walking'"),
        (["--resume"], "--resume: no study to resume"),
    ],
)
def test_bad_options_are_one_line(run_data, space, tmp_path, capsys, extra, message):
    code, _, err = cli(capsys, "tune", "--data", str(run_data), "--space", str(space), "--out",
                       str(tmp_path / "study"), "--no-track", *extra)  # fmt: skip
    assert code == 2 and message in err and err.count("\n") == 1, err


# -- a study -----------------------------------------------------------------------------------


def test_two_stage_study_nests_every_trial_and_writes_the_best_config(run_data, space, tmp_path,
                                                                       capsys):  # fmt: skip
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "study"
    code, stdout, err = cli(capsys, "tune", "--data", str(run_data), "--space", str(space),
                            "--out", str(out), "--trials", "2", "--fine-trials", "2",
                            "--workers", "2", "--tracking-uri", uri, *TINY)  # fmt: skip
    assert code == 0, err
    result = json.loads((out / "tune.json").read_text())
    stages = [t["stage"] for t in result["trials"]]
    assert sorted(stages) == ["coarse"] * 2 + ["fine"] * 2
    assert set(result["stages"]) == {"coarse", "fine"}
    fine = {k: v for item in result["stages"]["fine"] for k, v in item.items()}
    lr = fine["optimizer.learning_rate"]["log_uniform"]
    assert 1e-4 <= lr[0] < lr[1] <= 1e-2
    for trial in result["trials"]:
        if trial["stage"] == "fine":
            assert lr[0] <= trial["params"]["optimizer.learning_rate"] <= lr[1]
        assert math.isfinite(trial["value"]) and trial["value"] == trial["val_loss"]
        assert (out / "trials" / f"trial-{trial['number']:03d}" / "policy").is_dir()
    best = min(result["trials"], key=lambda t: t["value"])
    assert result["best"]["number"] == best["number"]
    config = load_config(out / "best_config.yaml")
    assert config.optimizer.learning_rate == pytest.approx(
        best["params"]["optimizer.learning_rate"]
    )
    assert config.model.activation == best["params"]["model.activation"]
    assert config.training.epochs == 1  # the overrides every trial started from
    assert (out / "plots" / "objective_vs_params.png").stat().st_size > 5000
    client = MlflowClient(uri)
    parent = client.get_run(result["run_id"])
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result['run_id']}'")  # fmt: skip
    assert {r.info.run_id for r in children} == {t["run_id"] for t in result["trials"]}
    assert len(client.get_metric_history(result["run_id"], "trial/objective")) == 4
    assert "best config:" in stdout


def test_closed_loop_objective_ranks_by_rollouts(run_data, space, tmp_path, capsys):
    out = tmp_path / "study"
    code, _, err = cli(capsys, "tune", "--data", str(run_data), "--space", str(space), "--out",
                       str(out), "--trials", "1", "--objective", "closed_loop",
                       "--rollout-episodes", "2", "--no-track", *TINY)  # fmt: skip
    assert code == 0, err
    (trial,) = json.loads((out / "tune.json").read_text())["trials"]
    score = trial["closed_loop"]
    assert 0.0 <= score["survival"] <= 1.0 and "normalized_distance" in score
    assert trial["value"] == pytest.approx(score["survival"], abs=3e-4)
    assert trial["eval_s"] > 0


def test_choice_labels_are_shared_by_both_stages() -> None:
    from pipeline.reports.tune_plots import choice_labels

    trials = [{"stage": "coarse", "params": {"h": [256, 256], "lr": 1e-4}},
              {"stage": "coarse", "params": {"h": [512, 512], "lr": 1e-2}},
              {"stage": "fine", "params": {"h": [512, 512], "lr": 2e-3}}]  # fmt: skip
    # The fine stage's only choice keeps the coarse stage's position for it.
    assert choice_labels(trials, "h") == ["[256, 256]", "[512, 512]"]
    assert choice_labels(trials, "lr") == []


def _complete_trials(db: Path) -> int:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_killed_study_resumes_without_repeating_trials(run_data, space, tmp_path, capsys):
    out = tmp_path / "study"
    args = ["tune", "--data", str(run_data), "--space", str(space), "--out", str(out),
            "--trials", "3", "--workers", "1", "--no-track", *TINY]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while _complete_trials(out / "study.db") < 1 and time.monotonic() < deadline:
        assert proc.poll() is None, "the study ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the study and its trial process, mid-trial
    proc.wait()
    with sqlite3.connect(out / "study.db") as con:
        before = dict(con.execute(
            "select t.number, v.value from trials t join trial_values v using (trial_id) "
            "where t.state = 'COMPLETE'").fetchall())  # fmt: skip
    assert 1 <= len(before) < 3
    code, _, err = cli(capsys, *args, "--resume")
    assert code == 0, err
    trials = json.loads((out / "tune.json").read_text())["trials"]
    assert len(trials) == 3  # three coarse trials, none twice
    for number, value in before.items():  # the finished ones were kept, not re-run
        assert next(t["value"] for t in trials if t["number"] == number) == value
    # Resuming with another space is refused, naming what differs.
    other = tmp_path / "other.yaml"
    other.write_text("optimizer.learning_rate: {log_uniform: [1.0e-3, 1.0e-2]}\n")
    code, _, err = cli(capsys, *[a if a != str(space) else str(other) for a in args], "--resume")
    assert code == 2 and "--resume: the study was started with another space" in err
