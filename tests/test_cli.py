"""The ``pipeline`` command line: help, rollouts, JSON/video outputs and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import imageio.v3 as iio
import pytest

from pipeline.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_commands(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    assert "rollout" in out and "envs" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rollout", "--env", "Nope-v0"], "--env: unknown environment 'Nope-v0'"),
        (["rollout", "--episodes", "0"], "--episodes: must be >= 1, got 0"),
        (["rollout", "--episodes", "-3"], "--episodes: must be >= 1, got -3"),
        (["rollout", "--episodes", "abc"], "Invalid value for '--episodes'"),
        (["rollout", "--workers", "0"], "--workers: must be >= 1"),
        (["rollout", "--bogus"], "No such option: --bogus"),
        (["nosuch"], "No such command 'nosuch'"),
        (["rollout", "--policy", "foo"], "--policy: unknown policy 'foo'"),
        (["rollout", "--policy", "humanoid_run"], "expert 'humanoid_run' does not act in"),
        (["rollout", "--start-phase", "1.5"], "--start-phase: 1.5 is outside [0, 1)"),
        (["rollout", "--start-phase", "sometimes"], "--start-phase: 'sometimes' is not"),
        (["rollout", "--env", "sim/HumanoidRun-v0", "--start-phase", "random"], "applies only to"),
        (["rollout", "--episode-seconds", "-1"], "--episode-seconds: -1.0 must be > 0"),
        (["rollout", "--video", "/dev/null/dir/v.mp4"], "/dev/null is not a directory"),
        (["rollout", "--video", "v.avi"], "must end in .mp4 or .gif"),
        (["rollout", "--json", "/dev/null/r.json"], "/dev/null is not a directory"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in err + out


def test_bad_input_leaves_existing_files_alone(capsys, tmp_path):
    report = tmp_path / "r.json"
    report.write_text("precious")
    code, _, _ = run_cli(capsys, "rollout", "--episodes", "0", "--json", str(report))
    assert code == 2 and report.read_text() == "precious"


def test_entry_point_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "rollout", "--env", "bad"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --env: unknown environment 'bad'")
    assert "Traceback" not in proc.stderr


def test_run_rollout_json(capsys, tmp_path):
    report = tmp_path / "run.json"
    code, out, err = run_cli(
        capsys, "rollout", "--env", "sim/HumanoidRun-v0", "--episodes", "2", "--seed", "3",
        "--json", str(report),
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(report.read_text())
    assert [e["seed"] for e in data["episodes"]] == [3, 4]
    for episode in data["episodes"]:
        assert episode["steps"] == 1000 and not episode["fell"]
        assert episode["return"] > 3000 and episode["distance"] > 30
    assert data["summary"]["survival_rate"] == 1.0
    assert "sim/HumanoidRun-v0" in out


def test_walk_rollout_video_and_table(capsys, tmp_path):
    video = tmp_path / "walk.mp4"
    report = tmp_path / "walk.json"
    code, out, err = run_cli(
        capsys, "rollout", "--episodes", "1", "--episode-seconds", "2", "--video", str(video),
        "--json", str(report),
    )  # fmt: skip
    assert code == 0, err
    episode = json.loads(report.read_text())["episodes"][0]
    assert not episode["fell"] and episode["survived_s"] == pytest.approx(2.0, abs=0.05)
    assert episode["distance"] > 1.0 and episode["pose_reward"] > 0.8
    frames = list(iio.imiter(video))
    assert len(frames) == episode["steps"] + 1
    assert frames[0].shape == (240, 320, 3)
    for column in ("survived s", "distance m", "pose reward"):
        assert column in out


def test_random_policy_falls(capsys, tmp_path):
    report = tmp_path / "random.json"
    code, _, err = run_cli(
        capsys, "rollout", "--policy", "random", "--episodes", "2", "--json", str(report)
    )
    assert code == 0, err
    data = json.loads(report.read_text())
    assert all(e["fell"] for e in data["episodes"])


def test_the_command_line_starts_without_heavy_imports():
    """`pipeline --help` and every command's option parsing import no TensorFlow, Keras,
    MLflow, Matplotlib or SciPy: each command imports what it uses. The typed configs
    (pydantic, about 0.2 s) are imported: the algorithms' options and help are made from
    them."""
    code = (
        "import sys, pipeline.cli;"
        "heavy = ('tensorflow', 'keras', 'mlflow', 'matplotlib', 'scipy');"
        "loaded = [m for m in heavy if m in sys.modules];"
        "assert not loaded, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
