"""Many trainings in one process: a training run restores every process-wide setting it
changes (seeds, op determinism, mixed precision, MLflow's tracking URI), so a second run
in the same process trains exactly as it would alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = """
import json, os, random, sys
from pathlib import Path

import keras
import numpy as np
from tensorflow.python.eager import context
from tensorflow.python.framework import config as tf_config

from models import load_policy
from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.tracking import prepare
from pipeline.training.config import load_config

data, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
fast = ["model.hidden_sizes=[32,32]", "data.batch_size=128", "training.epochs=2",
        "training.deterministic=true"]
report = {}
if mode == "a-then-b":
    random.seed(5)
    np.random.seed(5)
    before = {"policy": keras.mixed_precision.global_policy().name,
              "determinism": tf_config.is_op_determinism_enabled(),
              "tf_seed": context.context()._seed,
              "env_uri": os.environ.get("MLFLOW_TRACKING_URI")}
    a = load_config(None, [*fast, "seed=7", "model.hidden_sizes=[16]",
                           "training.mixed_precision=true"])
    uri = prepare("sqlite:///" + str(out / "mlflow.db"))
    train_from_file(data, a, out / "a", tracking_uri=uri)
    import mlflow.tracking._tracking_service.utils as mlflow_uri

    after = {"policy": keras.mixed_precision.global_policy().name,
             "determinism": tf_config.is_op_determinism_enabled(),
             "tf_seed": context.context()._seed,
             "env_uri": os.environ.get("MLFLOW_TRACKING_URI")}
    report = {"before": before, "after": after,
              "mlflow_global_uri": mlflow_uri._tracking_uri,
              "python_random": random.random(), "numpy_random": float(np.random.random())}
b = load_config(None, [*fast, "seed=1"])
train_from_file(data, b, out / "b")
weights = load_policy(out / "b" / "policy").model.get_weights()
np.savez(out / "b_weights.npz", *weights)
print(json.dumps(report))
"""


def _run(data: Path, out: Path, mode: str) -> dict:
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(data), str(out), mode],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two trainings in fresh processes and one in-process: ~25 s
def test_second_training_in_a_process_equals_it_alone_and_settings_are_restored(run_data, tmp_path):
    alone = tmp_path / "alone"
    _run(run_data, alone, "b-alone")
    report = _run(run_data, tmp_path / "after", "a-then-b")
    # Run A (mixed precision, op determinism, tracked in MLflow) changed nothing for later.
    assert report["after"] == report["before"]
    assert report["before"]["policy"] == "float32" and report["before"]["determinism"] is False
    assert report["mlflow_global_uri"] is None
    # The caller's global random streams continue where they were (seeded with 5 before A).
    assert report["python_random"] == __import__("random").Random(5).random()
    assert report["numpy_random"] == np.random.RandomState(5).random_sample()
    # B trained after A has exactly the weights of B trained alone.
    first = np.load(alone / "b_weights.npz")
    second = np.load(tmp_path / "after" / "b_weights.npz")
    assert first.files == second.files
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name])
