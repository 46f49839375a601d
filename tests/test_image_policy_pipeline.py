"""An image policy end to end on real recordings: ``record --camera`` -> ``train`` with
``model.name=cnn2d`` (MLflow logged, rollouts during training) -> ``evaluate`` rendering the
policy's own view each step, shown beside the video's; bad inputs are one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import imageio.v3 as iio
import numpy as np
import pytest

from models import load_policy
from pipeline.cli import main
from pipeline.rollout.policies import LearnedPolicy

RUN = "sim/HumanoidRun-v0"
SMALL_CNN = ["model.name=cnn2d", "model.filters=[4,8]", "model.kernel_sizes=3",
             "model.head_sizes=[32]", "training.epochs=1"]  # fmt: skip


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def camera_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three HumanoidRun expert demonstrations with a 16x12 follow camera."""
    path = tmp_path_factory.mktemp("camera") / "run_cam.h5"
    assert main(["record", "--env", RUN, "--episodes", "3", "--camera", "16x12",
                 "--out", str(path)]) == 0  # fmt: skip
    return path


@pytest.fixture(scope="module")
def image_policy(camera_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cnn2d (image+state, 2 frames) trained for one epoch, chosen by 2 rollouts, tracked."""
    out = tmp_path_factory.mktemp("train") / "cnn"
    uri = f"sqlite:///{out.parent / 'mlflow.db'}"
    assert main(["train", "--data", str(camera_data), "--out", str(out), "--tracking-uri", uri,
                 *SMALL_CNN, "data.history=2", "data.augment.image_shift=2",
                 "data.augment.image_brightness=0.2", "training.rollout_every=1",
                 "training.rollout_episodes=2", "training.rollout_workers=1"]) == 0  # fmt: skip
    return out


def test_the_trained_policy_sees_the_recorded_camera_and_is_logged(image_policy):
    loaded = load_policy(image_policy / "policy")
    assert loaded.spec.inputs == "image+state" and loaded.spec.image_shape == (2, 12, 16, 3)
    assert [t.name for t in loaded.model.inputs] == ["image", "observation"]
    run = json.loads((image_policy / "training_run.json").read_text())
    assert run["model_uri"] and run["selection"]["rollouts"]
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{image_policy.parent / 'mlflow.db'}")
    pyfunc = mlflow.pyfunc.load_model(run["model_uri"])
    example = loaded.spec.example_inputs(rows=3)
    np.testing.assert_allclose(pyfunc.predict(example), np.asarray(loaded.model(example)),
                               rtol=1e-5, atol=1e-5)  # fmt: skip


def test_evaluate_renders_the_policys_view_and_shows_it_beside_the_video(
    image_policy, tmp_path, capsys
):
    video, report = tmp_path / "eval.mp4", tmp_path / "eval.json"
    code, _, err = cli(capsys, "evaluate", "--policy", str(image_policy), "--episodes", "2",
                         "--workers", "2", "--video", str(video), "--json", str(report),
                         "--no-track")  # fmt: skip
    assert code == 0, err
    episodes = json.loads(report.read_text())["episodes"]["learner"]
    assert len(episodes) == 2 and all(e["steps"] > 0 for e in episodes)
    frame = iio.imread(video, index=0)
    # 320x240 follow view, then the 16x12 policy view scaled by 20 to 320x240.
    assert frame.shape == (240, 640, 3)
    assert frame[:, 320:].std() > 0  # the panel shows a picture, not black


@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_an_image_policy_exports_with_its_frame_stack_and_walks_from_the_file(
    fmt, image_policy, camera_data, tmp_path, capsys
):
    out = tmp_path / fmt
    code, _, err = cli(capsys, "policy", "export", str(image_policy), "--format", fmt, "--out",
                       str(out), "--states", "200")  # fmt: skip
    assert code == 0, err
    record = json.loads((out / "export.json").read_text())
    assert record["max_abs_diff"] <= 1e-4 and record["states"] == 200
    assert record["data"] == str(camera_data)  # the policy's own recording, with frames
    code, _, err = cli(capsys, "evaluate", "--policy", str(out), "--episodes", "1",
                       "--workers", "1", "--no-track")  # fmt: skip
    assert code == 0, err


def test_a_camera_policy_refuses_to_act_without_its_frame(image_policy):
    policy = LearnedPolicy.from_loaded(load_policy(image_policy / "policy"))
    policy.reset(0)
    obs = np.zeros(44, np.float32)
    with pytest.raises(ValueError, match="sees camera frames"):
        policy.act(obs)
    action = policy.act(obs, np.zeros((12, 16, 3), np.uint8))
    assert action.shape == (17,) and np.isfinite(action).all()


def test_image_only_trains_and_evaluates(camera_data, tmp_path, capsys):
    out = tmp_path / "image_only"
    code, _, err = cli(capsys, "train", "--data", str(camera_data), "--out", str(out),
                       "--no-track", *SMALL_CNN, "model.inputs=image")  # fmt: skip
    assert code == 0, err
    assert load_policy(out / "policy").spec.input_shapes == {"image": (12, 16, 3)}
    code, _, err = cli(capsys, "evaluate", "--policy", str(out), "--episodes", "1", "--no-track")
    assert code == 0, err


def one_line(code: int, err: str, message: str) -> None:
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err


def test_cnn2d_on_data_without_frames_is_one_line(run_data, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = cli(capsys, "train", "--data", str(run_data), "--out", str(out), "--no-track",
                       *SMALL_CNN)  # fmt: skip
    one_line(code, err, "model cnn2d sees camera frames and the file has none (record with "
                        "--camera WxH)")  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.name=cnn2d", "data.augment.mirror_prob=0.5"],
     "mirroring is defined for state observations; model cnn2d sees camera frames"),
    (["model.name=mlp", "data.augment.image_shift=4"],
     "model mlp sees no camera frames (use model.name cnn2d)"),
    (["model.name=cnn2d", "model.inputs=state"], "model.cnn2d.inputs: 'state' is not one of"),
])  # fmt: skip
def test_augmentation_that_does_not_fit_the_model_is_one_line(
    camera_data, tmp_path, capsys, overrides, message
):
    code, _, err = cli(capsys, "train", "--data", str(camera_data), "--out",
                       str(tmp_path / "o"), "--no-track", *overrides)  # fmt: skip
    one_line(code, err, message)
    assert not (tmp_path / "o").exists()


def test_frames_of_another_size_than_the_source_policy_are_one_line(image_policy, tmp_path, capsys):
    other = tmp_path / "other.h5"
    assert main(["record", "--env", RUN, "--episodes", "2", "--camera", "20x12",
                 "--out", str(other)]) == 0  # fmt: skip
    capsys.readouterr()
    code, _, err = cli(capsys, "train", "--data", str(other), "--out", str(tmp_path / "o"),
                       "--no-track", "--init-from", str(image_policy / "policy"),
                       *SMALL_CNN, "data.history=2")  # fmt: skip
    one_line(code, err, "sees camera frames (2, 12, 16, 3); this data and model give "
                        "(2, 12, 20, 3)")  # fmt: skip


def test_dagger_refuses_an_image_model(camera_data, tmp_path, capsys):
    code, _, err = cli(capsys, "dagger", "--init-data", str(camera_data), "--out",
                       str(tmp_path / "d"), "--no-track", "model.name=cnn2d")  # fmt: skip
    one_line(code, err, "DAgger relabels state observations only")
    assert not (tmp_path / "d").exists()


# --- pipeline visualize -----------------------------------------------------------------


def test_visualize_writes_filters_maps_and_saliency_and_logs_them(image_policy, camera_data,
                                                                  capsys):  # fmt: skip
    code, out, err = cli(capsys, "visualize", "--policy", str(image_policy), "--data",
                         str(camera_data), "--frames", "3", "--clip-steps", "20")  # fmt: skip
    assert code == 0, err
    folder = image_policy / "visualize"  # beside the policy in its run directory
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["activations_conv_0.png", "activations_conv_1.png", "filters.png",
                     "saliency.gif", "saliency.png"]  # fmt: skip
    filters = iio.imread(folder / "filters.png")
    assert filters.shape == (32, 4 * 32 + 3 * 2, 3)  # conv_0's 4 filters, 32 px each
    maps = iio.imread(folder / "activations_conv_1.png")
    assert maps.shape[0] == 3 * 96 + 2 * 2  # 3 frames (12 px scaled by 8) in rows
    assert maps.shape[1] == 9 * 128 + 8 * 2  # the frame and conv_1's 8 maps
    gif = iio.imread(folder / "saliency.gif", index=None)
    assert gif.shape[0] == 20
    run_id = json.loads((image_policy / "training_run.json").read_text())["run_id"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{image_policy.parent / 'mlflow.db'}")
    logged = sorted(a.path for a in client.list_artifacts(run_id, "visualize"))
    assert logged == [f"visualize/{name}" for name in names]
    assert run_id in out


def test_saliency_is_the_norm_of_the_action_jacobian_over_pixels(image_policy, camera_data):
    from datasets import open_dataset
    from pipeline.stages.visualize import clip_inputs, float_twin, saliency_maps

    loaded = load_policy(image_policy / "policy")
    model = float_twin(loaded)
    with open_dataset(camera_data) as ds:
        inputs = clip_inputs(ds, 0, loaded.spec, 3)
    saliency = saliency_maps(model, inputs, loaded.spec.history)
    assert saliency.shape == (3, 12, 16)
    # Central differences at two pixels of the second input: the same norm.
    base = {k: v[1:2].astype(np.float64) for k, v in inputs.items()}
    for row, col in ((5, 7), (0, 15)):
        squares = 0.0
        for frame in range(2):
            for colour in range(3):
                moved = [dict(base), dict(base)]
                for sign, m in zip((1, -1), moved, strict=True):
                    image = base["image"].copy()
                    image[0, frame, row, col, colour] += sign * 2.0
                    m["image"] = image
                out = [np.asarray(model({k: v.astype(np.float32) for k, v in m.items()}),
                                  np.float64) for m in moved]  # fmt: skip
                squares += float((((out[0] - out[1]) / 4.0) ** 2).sum())
        np.testing.assert_allclose(saliency[1, row, col], np.sqrt(squares), rtol=0.05)


def test_visualize_bad_inputs_are_one_line(image_policy, camera_data, run_data, tmp_path,
                                           capsys):  # fmt: skip
    state_only = tmp_path / "mlp"
    assert main(["train", "--data", str(camera_data), "--out", str(state_only), "--no-track",
                 "model.name=mlp", "model.hidden_sizes=[8]", "training.epochs=1"]) == 0  # fmt: skip
    other = tmp_path / "other.h5"
    assert main(["record", "--env", RUN, "--episodes", "1", "--camera", "20x12", "--out",
                 str(other)]) == 0  # fmt: skip
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    capsys.readouterr()
    cases = [
        (["--policy", str(state_only), "--data", str(camera_data)],
         "has no image convolution layers to show"),
        (["--policy", str(image_policy), "--data", str(run_data)],
         "has no camera frames (record with --camera 16x12)"),
        (["--policy", str(image_policy), "--data", str(other)],
         "frames are 20x12; the policy sees 16x12"),
        (["--policy", str(image_policy), "--data", str(camera_data), "--out", str(busy)],
         "exists and is not empty"),
        (["--policy", str(image_policy), "--data", str(camera_data), "--episode", "9"],
         "--episode 9:"),
        (["--policy", str(image_policy), "--data", str(tmp_path / "none.h5")], "file not found"),
    ]  # fmt: skip
    for args, message in cases:
        code, _, err = cli(capsys, "visualize", *args, "--no-track", "--out",
                           str(tmp_path / "v")) if "--out" not in args else cli(
                               capsys, "visualize", *args, "--no-track")  # fmt: skip
        one_line(code, err, message)
        assert not (tmp_path / "v").exists()
    assert (busy / "keep.txt").read_text() == "mine"
