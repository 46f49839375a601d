"""The motion-imitation lab: ``pipeline motion fit`` (phase -> joint angles, tracked in
MLflow) and ``pipeline motion play`` (kinematic and open-loop physics replay beside
closed-loop policies), the joint-vector conversions they rest on, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.stages.motion.clip_data import JOINT_COLUMNS, key_frames, rmse_table
from sim.assets import pybullet_data_path
from sim.mocap import (
    JOINT_VECTOR_NAMES,
    MotionClip,
    action_to_targets,
    joint_rotations,
    joint_vector,
    rotations_to_action,
)
from sim.skills import WALK

FAST = ["steps=600", "log_every=100"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _walk_clip() -> MotionClip:
    return MotionClip.load(pybullet_data_path(WALK.clip))


def _rotation_gap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """How far two rotations are apart: quaternions compared up to sign, angles directly."""
    x, y = np.asarray(a), np.asarray(b)
    return float(min(np.abs(x - y).max(), np.abs(x + y).max()))


# -- joint vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("time", [0.0, 0.31, 0.77, 1.1])
def test_joint_vector_round_trips_to_the_same_pd_targets(time: float) -> None:
    pose = _walk_clip().pose_at(time)
    vector = joint_vector(pose)
    assert vector.shape == (36,) and len(JOINT_VECTOR_NAMES) == 36
    targets = action_to_targets(rotations_to_action(joint_rotations(vector)))
    for mine, theirs in zip(targets, pose.joint_positions, strict=True):
        assert _rotation_gap(mine, theirs) < 1e-6  # PyBullet's helpers are single precision


def test_an_unnormalized_or_identity_rotation_converts_cleanly() -> None:
    vector = joint_vector(_walk_clip().pose_at(0.2)) * 1.0
    vector[0:4] = [2.0, 0.0, 0.0, 0.0]  # chest: identity, not unit length
    action = rotations_to_action(joint_rotations(vector))
    assert np.isfinite(action).all() and action[0] == 0.0
    vector[4:8] = [0.0, 0.0, 3.0, 0.0]  # neck: a half turn about y, scaled
    action = rotations_to_action(joint_rotations(vector))
    assert action[4] == pytest.approx(math.pi) and action[5:8] == pytest.approx([0, 1, 0])
    with pytest.raises(ValueError, match="36 numbers"):
        joint_rotations(np.zeros(35))


def test_key_frames_are_sign_continuous_and_errors_are_rotation_angles() -> None:
    samples = key_frames(_walk_clip())
    assert samples.phases[0] == 0.0 and samples.phases[-1] == 1.0
    for _, cols, spherical in JOINT_COLUMNS:
        if spherical:
            q = samples.targets[:, cols]
            assert (np.sum(q[1:] * q[:-1], axis=1) >= 0).all()
            assert np.allclose(np.linalg.norm(q, axis=1), 1.0)
    flipped = samples.targets.copy()
    flipped[:, 0:4] *= -1.0  # the same rotations
    assert rmse_table(flipped, samples.targets)["all"] == pytest.approx(0.0, abs=1e-6)
    turned = samples.targets.copy()
    angle = 0.1
    turned[:, 35] += angle  # left elbow (revolute) off by 0.1 rad everywhere
    table = rmse_table(turned, samples.targets)
    assert table["left_elbow"] == pytest.approx(angle)
    assert table["arms"] == pytest.approx(math.sqrt(angle**2 / 4))


# -- motion fit ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("motion") / "walk"
    code = main(["motion", "fit", "--skill", "walk", "--out", str(out), "--no-track", *FAST])
    assert code == 0
    return out


def test_fit_learns_the_clip_and_saves_a_motion_that_reloads_alone(fitted) -> None:
    from pipeline.stages.motion.files import load_motion

    result = json.loads((fitted / "fit.json").read_text())
    assert result["samples"] == 39 and result["steps"] == 600
    assert result["loss"][-1] < result["loss"][0] / 5
    # 600 steps get within ~0.1 rad (30,000 reach 0.014, docs/benchmarks/motion-lab.md).
    assert result["rmse"]["all"] < 0.2 and set(result["rmse"]) >= {"legs", "arms", "torso"}
    for plot in result["plots"]:
        assert Path(plot).stat().st_size > 10_000
    motion = load_motion(fitted)
    assert motion.spec.skill == "walk" and motion.spec.outputs == JOINT_VECTOR_NAMES
    phases = np.linspace(0, 1, 7)
    keras_out = np.asarray(motion.model.predict_on_batch(phases.reshape(-1, 1).astype("float32")))
    np.testing.assert_allclose(motion.joints_at(phases), keras_out, atol=1e-5)
    assert (fitted / "model" / "config.yaml").read_text() == (fitted / "config.yaml").read_text()


def test_fit_is_tracked_in_mlflow(tmp_path, capsys) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "motion", "fit", "--skill", "jump", "--out", str(out),
                            "--tracking-uri", uri, "steps=200", "net.activation=tanh")  # fmt: skip
    assert code == 0, err
    run_id = stdout.split("mlflow run: ")[1].split()[0]
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.data.params["net.activation"] == "tanh" and run.data.params["skill"] == "jump"
    assert "fit_s" in run.data.metrics
    fit = json.loads((out / "fit.json").read_text())  # the run's metrics are the fit's own
    for part, value in fit["rmse"].items():
        assert run.data.metrics[f"rmse/{part}"] == pytest.approx(value), part
    assert len(client.get_metric_history(run_id, "train/loss")) == 2
    listed = {a.path for a in client.list_artifacts(run_id)}
    assert {"plots", "model"} <= listed
    assert {a.path for a in client.list_artifacts(run_id, "model")} >= {
        "model/motion.keras", "model/motion.json"}  # fmt: skip


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu"])
def test_every_lab_activation_builds_and_runs_on_the_numpy_path(activation) -> None:
    from models import MotionNetConfig, build_motion_net
    from models.inference import NumpyForward, compile_forward

    model = build_motion_net(MotionNetConfig(activation=activation, hidden_sizes=[8, 4]), 36, 0)
    forward = compile_forward(model)
    assert isinstance(forward, NumpyForward)
    x = np.linspace(0, 1, 5, dtype=np.float32).reshape(-1, 1)
    np.testing.assert_allclose(forward(x), model.predict_on_batch(x), atol=1e-5)


# -- motion play -----------------------------------------------------------------------------


def test_play_compares_open_loop_with_closed_loop_and_films_both(fitted, tmp_path, capsys):
    out, report = tmp_path / "play", tmp_path / "play.json"
    code, stdout, err = cli(capsys, "motion", "play", str(fitted), "--episodes", "2",
                            "--episode-seconds", "3", "--out", str(out), "--video-cycles",
                            "0.5", "--json", str(report))  # fmt: skip
    assert code == 0, err
    result = json.loads(report.read_text())
    rows = result["rows"]
    assert list(rows) == ["learned motion, open loop", "clip, open loop", "expert, closed loop"]
    # Without feedback neither the learned motion nor the clip itself stays up for 3 s;
    # the expert, reading the state, does from these starts.
    for name in ("learned motion, open loop", "clip, open loop"):
        assert rows[name]["survival_rate"] == 0.0 and rows[name]["seconds_max"] < 2.0
    assert rows["expert, closed loop"]["seconds_standing"] > rows["clip, open loop"]["seconds_max"]
    assert result["kinematic_rmse"]["all"] < 0.2
    kinematic = imageio.mimread(out / "kinematic.mp4")
    assert len(kinematic) == round(0.5 * _walk_clip().cycle_time * 27)
    assert kinematic[0].shape[1] > 2 * 320  # learned beside captured
    assert len(imageio.mimread(out / "open_loop.mp4")) >= 10
    assert "expert, closed loop" in stdout and "video:" in stdout


# -- bad input -------------------------------------------------------------------------------


def test_fit_on_a_missing_or_malformed_clip_names_line_and_column(tmp_path, capsys) -> None:
    missing = tmp_path / "none.txt"
    code, _, err = cli(capsys, "motion", "fit", "--clip", str(missing), "--out",
                       str(tmp_path / "a"), "--no-track")  # fmt: skip
    assert code == 2 and f"--clip {missing}: cannot read" in err and err.count("\n") == 1
    bad = tmp_path / "bad.txt"
    bad.write_text('{\n"Loop": "wrap",\n"Frames": [\n[0.03, 1, 2,\n')
    code, _, err = cli(capsys, "motion", "fit", "--clip", str(bad), "--out", str(tmp_path / "b"),
                       "--no-track")  # fmt: skip
    assert code == 2 and f"--clip {bad}: line 5 column 1: not valid JSON" in err
    short = tmp_path / "short.txt"
    good_row = ", ".join(["0.1"] * 44)
    short.write_text('{"Frames": [\n  [' + good_row + "],\n  [0.1, 2]\n]}")
    code, _, err = cli(capsys, "motion", "fit", "--clip", str(short), "--out",
                       str(tmp_path / "c"), "--no-track")  # fmt: skip
    assert code == 2 and "line 3 column 3: key frame 1 is not 44 finite numbers" in err
    assert not any((tmp_path / name).exists() for name in "abc")


def test_other_bad_input_is_one_line(fitted, run_data, tmp_path, capsys) -> None:
    code, _, err = cli(capsys, "motion", "fit", "--skill", "spinkick", "--no-track")
    assert code == 2 and "--skill spinkick: unknown skill" in err
    code, _, err = cli(capsys, "motion", "fit", "--out", str(fitted), "--no-track")
    assert code == 2 and "already exists" in err
    code, _, err = cli(capsys, "motion", "fit", "--no-track", "--out", str(tmp_path / "x"),
                       "net.hidden_sizes=[]")  # fmt: skip
    assert code == 2 and "net.hidden_sizes" in err and err.count("\n") == 1
    policy = tmp_path / "policy-run"
    assert cli(capsys, "train", "--data", str(run_data), "--out", str(policy), "--no-track",
               "training.epochs=1", "model.hidden_sizes=[8]")[0] == 0  # fmt: skip
    code, _, err = cli(capsys, "motion", "play", str(policy))
    assert code == 2 and "not a motion model" in err and "pipeline evaluate" in err
    code, _, err = cli(capsys, "motion", "play", str(tmp_path / "nowhere"))
    assert code == 2 and "not found" in err
    code, _, err = cli(capsys, "motion", "play", str(fitted), "--policy", str(policy))
    assert code == 2 and "drives sim/HumanoidRun-v0" in err and err.count("\n") == 1
