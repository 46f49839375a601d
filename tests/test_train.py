"""``pipeline train``: end to end on real demonstrations, determinism, resume after a kill,
MLflow (local SQLite and a real server), sanity checks, and bad input."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from models import load_policy
from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.cli import main
from pipeline.training.config import load_config

RUN = "sim/HumanoidRun-v0"
FAST = ["model.hidden_sizes=[32,32]", "data.batch_size=128", "training.epochs=3"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def weights_of(policy_dir: Path) -> list[np.ndarray]:
    return [np.asarray(w) for w in load_policy(policy_dir).model.get_weights()]


def test_train_end_to_end_policy_reloads_alone(run_data, tmp_path):
    config = load_config(None, FAST)
    result = train_from_file(run_data, config, tmp_path / "run")
    assert result.epochs == 3 and result.train_episodes == 3 and result.val_episodes == 1
    assert result.best_val_loss < result.initial_val_loss
    assert np.isfinite(result.mean_action_val_loss)
    assert {"loss", "val_loss", "lr"} <= set(result.history)
    assert any(k.startswith("grad_norm/") for k in result.history)
    for name in ("learning_curves.png", "gradient_norms.png"):
        assert (tmp_path / "run" / "plots" / name).stat().st_size > 1000
    loaded = load_policy(tmp_path / "run" / "policy")
    assert loaded.spec.env_id == RUN and loaded.spec.obs_dim == 44 and loaded.spec.act_dim == 17
    assert loaded.config["model"]["hidden_sizes"] == [32, 32]
    # raw observations in, raw actions out: the policy tracks the expert's labels
    from datasets import open_dataset

    with open_dataset(run_data) as ds:
        ep = ds.episode(ds.episode_ids()[0])
        obs, act = ep.observations[:200], ep.actions[:200]
    pred = np.asarray(loaded.model(obs))
    assert pred.shape == (200, 17)
    baseline = np.mean((act - act.mean(axis=0)) ** 2)
    assert np.mean((pred - act) ** 2) < baseline


def test_deterministic_same_seed_same_weights(run_data, tmp_path):
    config = load_config(None, [*FAST, "training.deterministic=true", "training.epochs=2"])
    train_from_file(run_data, config, tmp_path / "a")
    train_from_file(run_data, config, tmp_path / "b")
    for wa, wb in zip(
        weights_of(tmp_path / "a" / "policy"), weights_of(tmp_path / "b" / "policy"), strict=True
    ):
        np.testing.assert_array_equal(wa, wb)
    other = load_config(None, [*FAST, "training.deterministic=true", "training.epochs=2", "seed=1"])
    train_from_file(run_data, other, tmp_path / "c")
    assert not all(
        np.array_equal(a, c) for a, c in zip(weights_of(tmp_path / "a" / "policy"),
                                             weights_of(tmp_path / "c" / "policy"), strict=True)
    )  # fmt: skip


def test_resume_after_kill_matches_uninterrupted(run_data, tmp_path, capsys):
    """SIGKILL mid-run, then ``--resume`` with nothing but ``--out``: the run's own config
    and MLflow run are continued, to the weights of an uninterrupted run; a contradicting
    option is refused and changes nothing."""
    import mlflow

    overrides = [*FAST, "training.epochs=8", "training.early_stopping_patience=null",
                 "model.dropout=0.1", "schedule.name=exponential",
                 "schedule.decay_steps=20"]  # fmt: skip
    args = ["--data", str(run_data), "--deterministic", *overrides]
    full = tmp_path / "full"
    assert main(["train", *args, "--no-track", "--out", str(full)]) == 0
    killed = tmp_path / "killed"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "pipeline.cli", "train", *args, "--tracking-uri", store,
               "--out", str(killed)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / "checkpoint" / "state.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if json.loads(state.read_text())["epochs_done"] >= 3:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())["epochs_done"]
    assert 3 <= done < 8, f"the kill should land mid-training, checkpoint says {done} epochs"
    assert not (killed / "policy").exists()
    run_id = json.loads((killed / "run_start.json").read_text())["run_id"]
    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("humanoid-imitation").experiment_id
    assert client.get_run(run_id).info.status == "RUNNING"  # nobody could end it

    def untouched() -> dict[str, bytes]:
        files = sorted(p for p in killed.rglob("*") if p.is_file())
        return {str(p.relative_to(killed)): p.read_bytes() for p in files}

    def run_ids() -> list[str]:
        return [r.info.run_id for r in client.search_runs([experiment])]

    before = untouched()
    resume = ["train", "--data", str(run_data), "--out", str(killed), "--resume"]
    for extra, message in (
        (["training.epochs=9"], "training.epochs is 9 here but 8 in "),
        (["--seed", "3"], "seed is 3 here but 0 in "),
        (["--no-track"], "tracking.enabled is false here but true in "),
        (["--config", str(Path(__file__).parents[1] / "configs" / "run_cnn.yaml")], "here but"),
    ):
        code, _, err = cli(capsys, *resume, *extra)
        assert code == 2 and err.startswith("error: --resume ") and err.count("\n") == 1, err
        assert message in err, err
        assert untouched() == before and run_ids() == [run_id]
    # A checkpoint that does not load: refused before anything is written or reopened.
    broken = tmp_path / "broken"
    shutil.copytree(killed, broken)
    (broken / "checkpoint" / "model_variables.npz").write_bytes(b"not an npz")
    broken_before = {p: p.read_bytes() for p in broken.rglob("*") if p.is_file()}
    code, _, err = cli(capsys, *resume[:-2], str(broken), "--resume")
    assert code == 2 and "checkpoint unusable" in err and err.count("\n") == 1, err
    assert {p: p.read_bytes() for p in broken.rglob("*") if p.is_file()} == broken_before
    assert run_ids() == [run_id] and client.get_run(run_id).info.status == "RUNNING"
    config_bytes = (killed / "config.yaml").read_bytes()

    code, _, err = cli(capsys, *resume, "--json", str(tmp_path / "resumed.json"))
    assert code == 0, err
    assert (killed / "config.yaml").read_bytes() == config_bytes
    report = json.loads((tmp_path / "resumed.json").read_text())
    assert report["run_id"] == run_id and report["resumed_from_epoch"] == done
    assert run_ids() == [run_id]  # the same MLflow run, no other
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert {m.step for m in client.get_metric_history(run_id, "val/loss")} == set(range(8))
    assert run.data.params["training.epochs"] == "8"
    for a, b in zip(weights_of(full / "policy"), weights_of(killed / "policy"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_cnn_with_history_and_augmentation(run_data, tmp_path):
    config = load_config(Path(__file__).parents[1] / "configs" / "run_cnn.yaml",
                         ["training.epochs=1", "model.filters=[8,8]", "model.head_sizes=[16]",
                          "data.augment.obs_noise=0.1", "data.augment.mirror_prob=0.5",
                          "data.augment.feature_dropout=0.05"])  # fmt: skip
    result = train_from_file(run_data, config, tmp_path / "cnn")
    spec = load_policy(tmp_path / "cnn" / "policy").spec
    assert spec.history == 4 and spec.obs_norm == "minmax"
    assert np.isfinite(result.best_val_loss)


def test_mlflow_local_sqlite_run(run_data, tmp_path, monkeypatch, capsys):
    """Params, metrics and a run name that says what ran; a cosine schedule without
    decay_steps decays over the run's own length; the best epoch reads the same (counted
    from 1) in the JSON, the table, training_run.json and MLflow."""
    import re

    import mlflow

    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "train", "--data", str(run_data), "--out", "run", *FAST,
                         "training.epochs=2", "schedule.name=cosine", "schedule.alpha=0.1",
                         "schedule.warmup_steps=3", "--json", "train.json")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "train.json").read_text())
    client = mlflow.MlflowClient(tracking_uri="sqlite:///mlflow.db")
    run = client.get_run(report["run_id"])
    assert run.data.params["model.hidden_sizes"] == "[32, 32]"
    assert run.data.params["dataset.digest"].startswith("sha256:")
    history = client.get_metric_history(report["run_id"], "val/loss")
    assert [m.step for m in history] == [0, 1]
    assert "mlflow ui" in out
    assert re.fullmatch(r"train HumanoidRun mlp seed0 \d{4}-\d\d-\d\d \d\d:\d\d",
                        run.info.run_name), run.info.run_name  # fmt: skip
    # 3 training episodes x 1000 steps in batches of 128: 24 batches per epoch, 48 in all.
    assert run.data.params["schedule.decay_steps"] == "None"
    assert run.data.params["schedule.resolved_decay_steps"] == str(48 - 3)
    assert report["history"]["lr"][-1] == pytest.approx(0.1 * 1e-3, rel=1e-4)
    best = 1 + int(np.argmin(report["history"]["val_loss"]))
    table = re.search(r"best val loss \(epoch\)\s*[│|]\s*[\d.]+ \((\d+)\)", out)
    assert table is not None, out
    record = json.loads((tmp_path / "run" / "training_run.json").read_text())
    assert report["best_epoch"] == int(table.group(1)) == record["best_epoch"] == best
    assert run.data.metrics["best/epoch"] == best


def test_mlflow_server_run_and_pyfunc(run_data, tmp_path, mlflow_server, capsys):
    import mlflow

    code, _, err = cli(capsys, "train", "--data", str(run_data), "--out", str(tmp_path / "r"),
                       "--tracking-uri", mlflow_server, "--register", "run-bc", *FAST,
                       "training.epochs=1", "--json", str(tmp_path / "t.json"))  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "t.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    artifacts = {a.path for a in client.list_artifacts(report["run_id"])}
    assert {"config.yaml", "plots", "spec.json"} <= artifacts
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model("models:/run-bc/1")
    obs = np.zeros((3, 44), dtype=np.float32)
    actions = np.asarray(model.predict(obs))
    expected = np.asarray(load_policy(tmp_path / "r" / "policy").model(obs))
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-5)


def test_overfit_batch(run_data, capsys):
    code, out, _ = cli(capsys, "train", "--data", str(run_data), "--overfit-batch", "--no-track",
                       "data.batch_size=64")  # fmt: skip
    assert code == 0 and "near zero: yes" in out, out
    # a network too small to memorise a batch is reported as such, with exit code 1
    code, out, _ = cli(capsys, "train", "--data", str(run_data), "--overfit-batch", "--no-track",
                       "model.hidden_sizes=[1]", "data.batch_size=64")  # fmt: skip
    assert code == 1 and "near zero: NO" in out, out
    # a Gaussian log-likelihood loss goes negative: the verdict is on the mean action's error
    code, out, _ = cli(capsys, "train", "--data", str(run_data), "--overfit-batch", "--no-track",
                       "model.loss=gaussian_nll", "data.batch_size=64")  # fmt: skip
    assert code == 0 and "action_mse" in out and "near zero: yes" in out, out


def test_nan_loss_stops_with_message_and_keeps_checkpoint(run_data, tmp_path, capsys):
    code, _, err = cli(capsys, "train", "--data", str(run_data), "--out", str(tmp_path / "nan"),
                       "--no-track", *FAST, "training.epochs=4", "optimizer.name=sgd",
                       "optimizer.learning_rate=1e12")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "diverged" in err, err
    assert not (tmp_path / "nan" / "policy").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optimizer.learnin_rate=0.1"], "unknown key, did you mean 'learning_rate'"),
        (["model.dropout=1.0"], "dropout"),
        (["model.hidden_sizes=[]"], "at least one layer"),
        (["optimizer.learning_rate=0"], "greater than 0"),
        (["model.name=cnn1d"], "history >= 2"),
        (["nonsense"], "expected key=value"),
    ],
)
def test_bad_config(run_data, tmp_path, capsys, args, message):
    code, _, err = cli(capsys, "train", "--data", str(run_data), "--out", str(tmp_path / "x"),
                       "--no-track", *args)  # fmt: skip
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "x").exists()


def test_bad_data_and_outputs(run_data, tmp_path, capsys):
    def fails(*args: str, message: str) -> None:
        code, _, err = cli(capsys, "train", "--no-track", *args)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert message in err, err

    fails("--data", str(tmp_path / "missing.h5"), message="file not found")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    fails("--data", str(empty), message=str(empty))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all, just text" * 10)
    fails("--data", str(junk), message=str(junk))
    fails("--data", str(run_data), "--out", str(tmp_path / "nothing"), "--resume",
          message="nothing to resume")  # fmt: skip
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    fails("--data", str(run_data), "--out", str(existing), message="already exists")
    assert (existing / "keep.txt").read_text() == "precious"
    code, _, err = cli(capsys, "train", "--data", str(run_data), "--out", str(tmp_path / "u"),
                       "--tracking-uri", "http://127.0.0.1:9", *FAST)  # fmt: skip
    assert code == 2 and "not reachable" in err and not (tmp_path / "u").exists()


def test_nan_in_data_is_a_clear_error(run_data, tmp_path, capsys):
    bad = tmp_path / "nan.h5"
    bad.write_bytes(run_data.read_bytes())
    with h5py.File(bad, "r+") as f:
        name = sorted(k for k in f if k.startswith("episode_"))[0]
        f[name]["observations"][5, 3] = np.nan
    code, _, err = cli(capsys, "train", "--data", str(bad), "--out", str(tmp_path / "o"),
                       "--no-track", *FAST)  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "NaN" in err, err


def test_observation_size_mismatch(tmp_path, capsys):
    from datasets import DatasetMetadata, Episode, EpisodeWriter, SpaceSpec

    path = tmp_path / "wrong.h5"
    meta = DatasetMetadata(env_id="sim/HumanoidWalk-v0",
                           observation_space=SpaceSpec.unbounded((44,)),
                           action_space=SpaceSpec.unbounded((36,)))  # fmt: skip
    rng = np.random.default_rng(0)
    with EpisodeWriter.create(path, meta) as writer:
        for seed in range(3):
            writer.commit(Episode(
                observations=rng.normal(size=(11, 44)).astype(np.float32),
                actions=rng.normal(size=(10, 36)).astype(np.float32),
                rewards=np.zeros(10), terminations=np.zeros(10, bool),
                truncations=np.r_[np.zeros(9, bool), True], seed=seed))  # fmt: skip
    code, _, err = cli(
        capsys, "train", "--data", str(path), "--no-track", "--out", str(tmp_path / "o")
    )
    assert code == 2 and "do not match sim/HumanoidWalk-v0" in err and err.count("\n") == 1


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pathlib import Path
from pipeline.training.config import load_config
from pipeline.algorithms.behaviour_cloning import train_from_file
config = load_config(None, ["training.strategy=mirrored", "training.epochs=1",
                            "model.hidden_sizes=[16]"])
result = train_from_file(Path(sys.argv[1]), config, Path(sys.argv[2]))
print("devices", len(tf.config.list_logical_devices("CPU")), "loss", result.best_val_loss)
"""


def test_mirrored_strategy_on_two_logical_cpus(run_data, tmp_path):
    """MirroredStrategy with model.fit, on the CPU split into two logical devices (the
    multi-GPU path, testable without GPUs)."""
    done = subprocess.run([sys.executable, "-c", MIRRORED, str(run_data), str(tmp_path / "m")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    words = done.stdout.split()
    assert words[words.index("devices") + 1] == "2"
    assert np.isfinite(float(words[words.index("loss") + 1]))
    assert load_policy(tmp_path / "m" / "policy").spec.obs_dim == 44


def test_observation_scale_floor_reaches_the_saved_policy(run_data, tmp_path):
    from models.spec import PolicySpec

    variances = {}
    for floor in (0.0, 0.5):
        config = load_config(None, [*FAST, "training.epochs=1", f"data.obs_scale_floor={floor}"])
        train_from_file(run_data, config, tmp_path / f"floor{floor}")
        spec = PolicySpec.from_dict(
            json.loads((tmp_path / f"floor{floor}" / "policy" / "spec.json").read_text())
        )
        variances[floor] = np.asarray(spec.obs_variance)
    lifted = variances[0.0] < 0.25
    assert lifted.any() and (~lifted).any()
    np.testing.assert_allclose(variances[0.5][lifted], 0.25)
    np.testing.assert_allclose(variances[0.5][~lifted], variances[0.0][~lifted])


def test_gaussian_log_likelihood_loss_trains_a_policy_that_reloads_alone(run_data, tmp_path):
    config = load_config(None, [*FAST, "training.epochs=2", "model.loss=gaussian_nll"])
    result = train_from_file(run_data, config, tmp_path / "nll")
    assert {"val_action_mse", "action_mse"} <= set(result.history)
    assert all(np.isfinite(result.history["val_action_mse"]))
    policy = load_policy(tmp_path / "nll" / "policy")
    with h5py.File(run_data) as f:
        obs = np.asarray(f[sorted(k for k in f if k.startswith("episode_"))[0]]["observations"])
    assert np.asarray(policy.model(obs[:5])).shape == (5, 17)


def test_train_command_opens_the_file_once(run_data, tmp_path, capsys, monkeypatch):
    """The command's one handle serves the checks, statistics, counts and split; only the
    two streaming pipelines (training, validation) open their own read handle, because
    TensorFlow's threads read through it even after the command's work is done."""
    from datasets.store import reader

    opened: list[str] = []
    original = reader.Dataset.__init__

    def counting(self, path, *args, **kwargs):
        opened.append(str(path))
        original(self, path, *args, **kwargs)

    monkeypatch.setattr(reader.Dataset, "__init__", counting)
    code, _, err = cli(capsys, "train", "--data", str(run_data), "--out", str(tmp_path / "o"),
                       "--no-track", *FAST, "training.epochs=1")  # fmt: skip
    assert code == 0, err
    assert opened == [str(run_data)] * 3, opened
