"""``pipeline policy export``: a real trained policy exported through Keras to SavedModel, ONNX
and LiteRT, run in each runtime on recorded states and in closed loop by ``pipeline evaluate``,
and refused on bad input with nothing written."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets import open_dataset
from models import load_policy
from models.exported import EXPORT_FILE, load_exported
from models.exported import runner_for as runner_of_the_runtime
from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.cli import main
from pipeline.core.recorded_inputs import sample_inputs
from pipeline.stages.policy_export import keras_actions
from pipeline.training.config import load_config

FILES = {"saved_model": "saved_model", "onnx": "model.onnx", "litert": "model.tflite"}


@pytest.fixture(scope="module")
def trained(run_data, tmp_path_factory) -> Path:
    """A small MLP trained on four run demonstrations, untracked."""
    out = tmp_path_factory.mktemp("export-train") / "run"
    train_from_file(
        run_data, load_config(None, ["model.hidden_sizes=[32,32]", "training.epochs=2"]), out
    )
    return out


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory) -> dict[str, Path]:
    """One export per format (and int8 LiteRT), written through the command line."""
    root = tmp_path_factory.mktemp("exports")
    made = {}
    for name, args in {"saved_model": ["--format", "saved_model"], "onnx": ["--format", "onnx"],
                       "litert": ["--format", "litert"],
                       "int8": ["--format", "litert", "--quantize", "int8"]}.items():  # fmt: skip
        out = root / name
        assert main(["policy", "export", str(trained), *args, "--out", str(out), "--states",
                     "300", "--json", str(root / f"{name}.json")]) == 0  # fmt: skip
        made[name] = out
    return made


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["saved_model", "onnx", "litert"])
def test_float_exports_match_the_keras_policy_on_recorded_states(fmt, exports, trained, run_data):
    directory = exports[fmt]
    record = json.loads((directory / EXPORT_FILE).read_text())
    assert record["format"] == fmt and record["quantize"] is None
    assert record["states"] == 300 and record["max_abs_diff"] <= 1e-4
    assert (directory / FILES[fmt]).exists() and record["size_bytes"] > 0
    source = load_policy(trained / "policy")
    assert (directory / "spec.json").read_text() == (trained / "policy" / "spec.json").read_text()
    # An independent check on other states than the export's own: the file, reloaded.
    exported = load_exported(directory / FILES[fmt])
    assert exported.format == fmt and exported.spec == source.spec
    with open_dataset(run_data) as ds:
        inputs = sample_inputs(ds, source.spec, 777, "data")
    observations = inputs["observation"]
    expected = keras_actions(source.model, inputs)
    got = exported.forward(observations)
    assert got.shape == expected.shape == (777, source.spec.act_dim)
    assert np.abs(got - expected).max() <= 1e-4
    single = exported.forward(observations[:1])  # batch 1 works after a larger batch
    assert np.abs(single - expected[:1]).max() <= 1e-4
    # The runner travels to worker processes as its path and reopens the runtime there.
    again = pickle.loads(pickle.dumps(exported.forward))
    assert np.array_equal(again(observations[:8]), exported.forward(observations[:8]))


def test_int8_litert_is_smaller_and_reports_its_error(exports):
    int8 = json.loads((exports["int8"] / EXPORT_FILE).read_text())
    floats = json.loads((exports["litert"] / EXPORT_FILE).read_text())
    assert int8["quantize"] == "int8"
    assert int8["size_bytes"] < floats["size_bytes"]
    assert int8["max_abs_diff"] > floats["max_abs_diff"]  # quantized weights do differ


def test_evaluate_runs_an_exported_policy_in_closed_loop(exports, trained, tmp_path, capfd):
    reports = {}
    for name, policy in {"keras": trained, "onnx": exports["onnx"] / "model.onnx",
                         "litert": exports["litert"]}.items():  # fmt: skip
        json_path = tmp_path / f"{name}.json"
        code, _, err = cli(capfd, "evaluate", "--policy", str(policy), "--episodes", "2",
                           "--workers", "2", "--no-track", "--json", str(json_path))  # fmt: skip
        assert code == 0, err
        # Nothing from the runtimes on stderr, worker processes included (file descriptor 2).
        assert "INFO" not in err and "XNNPACK" not in err and "onnxruntime" not in err, err
        reports[name] = json.loads(json_path.read_text())
    for name in ("onnx", "litert"):
        assert reports[name]["seeds"] == reports["keras"]["seeds"]
        for got, want in zip(reports[name]["episodes"]["learner"],
                             reports["keras"]["episodes"]["learner"], strict=True):  # fmt: skip
            # The same episode as the Keras policy's, up to the runtime's rounding.
            assert (got["seed"], got["steps"], got["fell"]) == (
                want["seed"], want["steps"], want["fell"])  # fmt: skip
            assert got["return"] == pytest.approx(want["return"], rel=1e-4)
            assert got["distance"] == pytest.approx(want["distance"], abs=1e-4)


def test_export_json_report_and_training_run_beside(exports, trained, tmp_path):
    report = json.loads((exports["onnx"].parent / "onnx.json").read_text())
    assert report["command"] == "policy export" and report["directory"] == str(exports["onnx"])
    beside = json.loads((exports["onnx"] / "training_run.json").read_text())
    assert beside == json.loads((trained / "training_run.json").read_text())


def test_bad_inputs_are_refused_in_one_line_with_nothing_written(
    trained, exports, run_data, tmp_path, capsys, monkeypatch
):
    not_policy = tmp_path / "empty"
    not_policy.mkdir()
    cases = [
        (["policy", "export", str(not_policy), "--format", "onnx", "--out",
          str(tmp_path / "a")], "POLICY"),
        (["policy", "export", str(trained), "--format", "onnx", "--out",
          str(exports["onnx"])], "already exists"),
        (["policy", "export", str(trained), "--format", "tflite", "--out",
          str(tmp_path / "b")], "--format tflite"),
        (["policy", "export", str(trained), "--format", "onnx", "--quantize", "int8",
          "--out", str(tmp_path / "c")], "litert only"),
        (["policy", "export", str(trained), "--format", "onnx", "--data",
          str(tmp_path / "none.h5"), "--out", str(tmp_path / "d")], "--data"),
    ]  # fmt: skip
    before = sorted(p.name for p in exports["onnx"].iterdir())
    for args, words in cases:
        code, out, err = cli(capsys, *args)
        assert code == 2, (args, out, err)
        assert words in err and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err + out
    assert sorted(p.name for p in exports["onnx"].iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_commands_that_need_weights_refuse_an_export(exports, run_data, tmp_path, capsys):
    for args in (["policy", "export", str(exports["onnx"]), "--format", "litert", "--out",
                  str(tmp_path / "again")],
                 ["train", "--data", str(run_data), "--init-from", str(exports["onnx"]),
                  "--out", str(tmp_path / "warm"), "--no-track"]):  # fmt: skip
        code, _, err = cli(capsys, *args)
        assert code == 2 and "an exported policy" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_missing_runtime_is_named(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    code, _, err = cli(capsys, "policy", "export", str(trained), "--format", "onnx",
                       "--out", str(tmp_path / "x"))  # fmt: skip
    assert code == 2 and "onnxruntime" in err and "pip install" in err
    assert not (tmp_path / "x").exists()


def test_data_of_another_env_is_refused(trained, tmp_path, capsys):
    from pipeline.stages.record import RecordConfig, record

    walk = tmp_path / "walk.h5"
    record(RecordConfig(out=walk, env_id="sim/HumanoidWalk-v0", episodes=1, seed=0, workers=1,
                        episode_seconds=1.0))  # fmt: skip
    code, _, err = cli(capsys, "policy", "export", str(trained), "--format", "onnx", "--data",
                       str(walk), "--out", str(tmp_path / "x"))  # fmt: skip
    assert code == 2 and "HumanoidWalk" in err and "HumanoidRun" in err
    assert not (tmp_path / "x").exists()


def _perturbed_runner(monkeypatch, change) -> None:
    """Every runtime the parity check opens returns its actions changed by ``change``."""
    import models.exported as exported

    def runner_for(fmt, model_path, spec):
        run = runner_of_the_runtime(fmt, model_path, spec)
        return lambda *batch: change(np.array(run(*batch), dtype=np.float64))

    monkeypatch.setattr(exported, "runner_for", runner_for)


def _one_entry(actions: np.ndarray) -> np.ndarray:
    actions[-1, -1] += 3e-4  # one action of one state, 3x the real tolerance
    return actions


def test_the_parity_gate_refuses_an_export_off_by_more_than_its_tolerance(
    trained, tmp_path, capsys, monkeypatch
):
    """At the real tolerance (1e-4): one action of one recorded state off by 3e-4 is refused,
    naming the difference; every action off by 5e-5 passes, and the report says 5e-5."""
    import pipeline.stages.policy_export as stage

    assert stage.FLOAT_TOLERANCE == 1e-4
    _perturbed_runner(monkeypatch, _one_entry)
    code, _, err = cli(capsys, "policy", "export", str(trained), "--format", "saved_model",
                       "--states", "50", "--out", str(tmp_path / "off"))  # fmt: skip
    assert code == 2 and "differs from the Keras policy by up to 0.0003 " in err, err
    assert "(allowed 0.0001); nothing written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    _perturbed_runner(monkeypatch, lambda actions: actions + 5e-5)
    code, _, err = cli(capsys, "policy", "export", str(trained), "--format", "saved_model",
                       "--states", "50", "--out", str(tmp_path / "near"))  # fmt: skip
    assert code == 0, err
    record = json.loads((tmp_path / "near" / EXPORT_FILE).read_text())
    assert record["max_abs_diff"] == pytest.approx(5e-5, abs=2e-6)
    assert record["mean_abs_diff"] == pytest.approx(5e-5, abs=2e-6)


def test_an_export_that_fails_parity_leaves_nothing(trained, tmp_path, capsys, monkeypatch):
    import pipeline.stages.policy_export as stage

    monkeypatch.setattr(stage, "FLOAT_TOLERANCE", -1.0)  # no export can meet it
    code, _, err = cli(capsys, "policy", "export", str(trained), "--format", "onnx",
                       "--states", "50", "--out", str(tmp_path / "x"))  # fmt: skip
    assert code == 2 and "differs from the Keras policy" in err and "nothing written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
