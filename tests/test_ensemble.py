"""Ensemble policies (``ensemble: N`` in a model config): members built and fitted
independently inside one Keras model, the policy acting with their mean."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pydantic
import pytest

from models import load_policy, save_policy
from models.config import MLPConfig, format_validation_error
from models.inference import compile_numpy
from models.registry import PolicyModels, build_loss, build_policy, normalized_action_output
from pipeline.training.model import freeze_blocks
from tests.test_models import ACT_DIM, BATCH, make_spec, raw_batch

MEMBERS = 3


def member_outputs(built: PolicyModels, obs: np.ndarray) -> np.ndarray:
    """(batch, members, act_dim) z-scored actions from the training model."""
    out = np.asarray(built.train_model(obs, training=False))
    return out.reshape(len(obs), -1, built.spec.act_dim)


@pytest.mark.parametrize("name, options, history", [
    ("mlp", {"hidden_sizes": [8, 6]}, 1),
    ("mlp", {"hidden_sizes": [8], "batch_norm": "before", "dropout": 0.2}, 2),
    ("cnn1d", {"filters": [4], "kernel_sizes": 2, "head_sizes": [6]}, 3),
])  # fmt: skip
def test_policy_is_the_mean_of_independent_members(name, options, history):
    spec = make_spec(history=history)
    built = build_policy(name, spec, {**options, "ensemble": MEMBERS}, seed=4)
    obs, _ = raw_batch(spec)
    members = member_outputs(built, obs)
    assert members.shape == (BATCH, MEMBERS, ACT_DIM)
    # Different initial weights: the members disagree before any training.
    assert not np.allclose(members[:, 0], members[:, 1], atol=1e-3)
    mean, std = spec.act_scale()
    expected = members.mean(axis=1) * std + mean
    np.testing.assert_allclose(built.policy(obs, training=False), expected, rtol=1e-5, atol=1e-5)
    # Member 0 is the single network the same seed builds.
    single = build_policy(name, spec, options, seed=4)
    np.testing.assert_allclose(single.train_model(obs, training=False), members[:, 0], atol=1e-6)
    # The NumPy rollout path computes the same mean.
    np.testing.assert_allclose(compile_numpy(built.policy)(obs), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("members", [1, MEMBERS])
def test_the_policys_z_scored_action_is_the_members_mean(members):
    spec = make_spec()
    built = build_policy("mlp", spec, {"hidden_sizes": [8], "ensemble": members}, seed=3)
    obs, _ = raw_batch(spec)
    z_scored = keras.Model(built.policy.input, normalized_action_output(built.policy))
    np.testing.assert_allclose(z_scored(obs), member_outputs(built, obs).mean(axis=1), atol=1e-6)


def test_each_member_is_fitted_on_its_own_loss():
    spec = make_spec()
    built = build_policy("mlp", spec, {"hidden_sizes": [8], "ensemble": MEMBERS}, seed=0)
    obs, actions = raw_batch(spec)
    target = spec.normalize_actions(actions)
    members = member_outputs(built, obs)
    per_member = ((members - target[:, None, :]) ** 2).mean(axis=(0, 2))
    loss = float(built.loss(target, built.train_model(obs, training=False)))
    # The mean of the members' own errors, not the error of their mean (which is smaller).
    assert loss == pytest.approx(per_member.mean(), rel=1e-5)
    of_mean = float(((members.mean(axis=1) - target) ** 2).mean())
    assert loss > of_mean
    (metric,) = built.metrics
    metric.update_state(target, built.train_model(obs, training=False))
    assert (metric.name, float(metric.result())) == ("action_mse", pytest.approx(of_mean, rel=1e-5))
    # A member's loss gradient reaches its own weights only: member 1's output layer gets
    # no gradient from member 0's error.
    import tensorflow as tf

    with tf.GradientTape() as tape:
        first = built.train_model(obs, training=True)[:, :ACT_DIM]
        loss0 = tf.reduce_mean(tf.square(first - target))
    kernel = built.policy.get_layer("m1_action_normalized").kernel
    gradient = tape.gradient(loss0, kernel)
    assert gradient is None or not np.any(gradient)


def test_fitting_moves_every_member_towards_the_targets():
    spec = make_spec()
    built = build_policy("mlp", spec, {"hidden_sizes": [16], "ensemble": 2}, seed=1)
    obs, actions = raw_batch(spec)
    target = spec.normalize_actions(actions)
    before = ((member_outputs(built, obs) - target[:, None]) ** 2).mean(axis=(0, 2))
    built.train_model.compile(optimizer=keras.optimizers.Adam(0.01), loss=built.loss)
    built.train_model.fit(obs, target, batch_size=BATCH, epochs=60, verbose=0)
    after = ((member_outputs(built, obs) - target[:, None]) ** 2).mean(axis=(0, 2))
    assert np.all(after < 0.5 * before)


def test_ensemble_saves_reloads_and_recovers_its_training_model(tmp_path):
    spec = make_spec()
    config = MLPConfig(hidden_sizes=[8], ensemble=MEMBERS)
    built = build_policy(config, spec, seed=2)
    save_policy(tmp_path / "policy", built.policy, spec, {"model": config.model_dump()})
    loaded = load_policy(tmp_path / "policy")
    obs, _ = raw_batch(spec)
    np.testing.assert_allclose(loaded.model(obs), built.policy(obs), atol=1e-6)
    again = PolicyModels.from_policy(loaded.model, spec, config)
    np.testing.assert_allclose(again.train_model(obs), built.train_model(obs), atol=1e-6)


def test_freezing_stops_the_same_blocks_of_every_member():
    built = build_policy("mlp", make_spec(), {"hidden_sizes": [8, 6], "ensemble": 2}, seed=0)
    freeze_blocks(built.policy, 1)
    frozen = sorted(layer.name for layer in built.policy.layers
                    if layer.weights and not layer.trainable)  # fmt: skip
    assert frozen == ["hidden_0", "m1_hidden_0"]


def test_ensemble_needs_a_point_loss():
    with pytest.raises(pydantic.ValidationError) as info:
        MLPConfig(ensemble=2, loss="gaussian_nll")
    assert "ensemble > 1 needs a point loss" in format_validation_error(info.value)
    with pytest.raises(pydantic.ValidationError):
        MLPConfig(ensemble=0)
    assert build_loss(MLPConfig(ensemble=2, loss="huber"), ACT_DIM).name == "huber"


# --- through the pipeline: train, DAgger's warm start, export --------------------------------

ENSEMBLE_TINY = ["model.hidden_sizes=[32,32]", "model.ensemble=2", "data.batch_size=256",
                 "training.epochs=2"]  # fmt: skip


def test_pipeline_trains_refits_and_exports_an_ensemble(run_data, tmp_path):
    from pipeline.algorithms.behaviour_cloning import train_from_file
    from pipeline.algorithms.dagger import dagger
    from pipeline.algorithms.dagger_config import DaggerConfig
    from pipeline.cli import main
    from pipeline.training.config import load_config

    result = train_from_file(run_data, load_config(None, ENSEMBLE_TINY), tmp_path / "bc")
    loaded = load_policy(result.policy_dir)
    assert loaded.config["model"]["ensemble"] == 2
    names = [layer.name for layer in loaded.model.layers]
    assert {"action_normalized", "m1_action_normalized", "ensemble_mean"} <= set(names)
    # The loss scores the members one by one; the policy's own error is logged beside it.
    assert len(result.history["val_action_mse"]) == 2
    assert result.history["val_action_mse"][-1] < result.history["val_loss"][-1]

    # DAgger refits warm-start every member from the previous iteration's.
    run = dagger(run_data, tmp_path / "dagger",
                 DaggerConfig(iterations=1, episodes_per_iteration=1, eval_episodes=1, workers=1),
                 load_config(None, ENSEMBLE_TINY))  # fmt: skip
    assert [row.iteration for row in run.rows] == [0, 1]
    assert load_policy(run.policy_dir).config["model"]["ensemble"] == 2

    # An exported ensemble holds the average too (parity with the Keras policy is checked
    # before anything is written).
    out = tmp_path / "onnx"
    assert main(["policy", "export", str(tmp_path / "bc"), "--format", "onnx", "--out", str(out),
                 "--states", "200"]) == 0  # fmt: skip
    assert (out / "model.onnx").is_file()
