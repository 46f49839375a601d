"""Saving and loading policy directories: self-contained, safe_mode, clear errors."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from models import saving
from models.config import MLPConfig
from models.registry import PolicyModels, build_policy
from models.saving import (
    LoadedPolicy,
    PolicyLoadError,
    PolicySaveError,
    is_policy_directory,
    load_policy,
    save_policy,
)
from models.spec import PolicySpec

OBS_DIM, ACT_DIM = 6, 4


def make_spec(history: int = 1) -> PolicySpec:
    rng = np.random.default_rng(0)
    # Far from zero mean / unit scale, so a missing normalization could not go unnoticed.
    return PolicySpec.from_zscore(
        env_id="test/Env-v0",
        obs_mean=rng.normal(50.0, 10.0, OBS_DIM),
        obs_variance=rng.uniform(10.0, 400.0, OBS_DIM),
        act_mean=rng.normal(-20.0, 5.0, ACT_DIM),
        act_variance=rng.uniform(1.0, 100.0, ACT_DIM),
        history=history,
        stats_source="data/demo.h5 (train split)",
        stats_digest="sha256:abc",
    )


def observations(spec: PolicySpec, n: int = 16, seed: int = 1) -> np.ndarray:
    mean, std = spec.obs_scale()
    rng = np.random.default_rng(seed)
    return (mean + std * rng.normal(size=(n, *spec.obs_shape))).astype(np.float32)


def trained(name: str, spec: PolicySpec, options: dict) -> PolicyModels:
    """A policy trained a few steps, so batch-norm moving statistics are not the defaults."""
    built = build_policy(name, spec, options, seed=0)
    obs = observations(spec, n=32, seed=2)
    targets = np.random.default_rng(3).normal(size=(32, ACT_DIM)).astype(np.float32)
    built.train_model.compile(optimizer="adam", loss=built.loss, run_eagerly=True)
    for _ in range(3):
        built.train_model.train_on_batch(obs, targets)
    return built


@pytest.mark.parametrize(
    "name, history, options",
    [
        ("mlp", 1, {"hidden_sizes": [16, 8], "batch_norm": "before", "dropout": 0.2, "l2": 1e-3}),
        ("cnn1d", 3, {"filters": [4], "separable": True, "pooling": "avg", "batch_norm": "after"}),
    ],
)
def test_saved_policy_maps_raw_obs_to_the_same_raw_actions_alone(tmp_path, name, history, options):
    spec = make_spec(history)
    built = trained(name, spec, options)
    config = {"model": built.config.model_dump(mode="json"), "seed": 0}
    target = save_policy(tmp_path / "policy", built.policy, spec, config)

    assert sorted(p.name for p in target.iterdir()) == [
        "config.json",
        "manifest.json",
        "policy.keras",
        "spec.json",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["policy"]  # no staging left behind
    loaded = load_policy(target)
    assert isinstance(loaded, LoadedPolicy)
    assert loaded.spec == spec
    assert loaded.config == config
    obs = observations(spec)
    expected = np.asarray(built.policy(obs))
    np.testing.assert_allclose(np.asarray(loaded.model(obs)), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(loaded.model.predict(obs, verbose=0), expected, rtol=1e-6, atol=1e-6)
    # Raw in, raw out: the outputs live on the actions' own scale.
    assert abs(float(np.mean(expected)) - float(np.mean(spec.act_mean))) < 3 * max(
        spec.act_scale()[1]
    )
    # The train model (z-scored actions) can be recovered from the reloaded policy.
    again = PolicyModels.from_policy(loaded.model, loaded.spec, built.config)
    np.testing.assert_allclose(
        np.asarray(again.train_model(obs)), np.asarray(built.train_model(obs)), atol=1e-5
    )


def test_overwrite_replaces_only_policy_directories(tmp_path):
    spec = make_spec()
    first = build_policy("mlp", spec, {"hidden_sizes": [4]}, seed=0).policy
    second = build_policy("mlp", spec, {"hidden_sizes": [4]}, seed=1).policy
    target = save_policy(tmp_path / "p", first, spec, {"run": 1})
    with pytest.raises(PolicySaveError, match="overwrite=True"):
        save_policy(target, second, spec, {"run": 2})
    assert load_policy(target).config == {"run": 1}
    save_policy(target, second, spec, {"run": 2}, overwrite=True)
    loaded = load_policy(target)
    assert loaded.config == {"run": 2}
    obs = observations(spec)
    np.testing.assert_allclose(np.asarray(loaded.model(obs)), np.asarray(second(obs)), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]

    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(PolicySaveError, match="not a policy directory"):
        save_policy(other, first, spec, {}, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert is_policy_directory(save_policy(empty, first, spec, MLPConfig(hidden_sizes=[4])))


def test_save_refuses_a_model_that_does_not_match_the_spec(tmp_path):
    spec = make_spec()
    wrong = build_policy("mlp", make_spec(history=2), {"hidden_sizes": [4]}).policy
    with pytest.raises(PolicySaveError, match="input shape"):
        save_policy(tmp_path / "p", wrong, spec, {})
    with pytest.raises(PolicySaveError, match="not JSON"):
        save_policy(tmp_path / "p", build_policy("mlp", spec).policy, spec, {"x": object()})
    assert not (tmp_path / "p").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def saved(tmp_path):
    spec = make_spec()
    policy = build_policy("mlp", spec, {"hidden_sizes": [4]}).policy
    return save_policy(tmp_path / "policy", policy, spec, {"seed": 0})


def test_load_errors_are_one_clear_line(tmp_path, saved):
    cases = {}
    cases["missing"] = (tmp_path / "nowhere", "not found")
    (tmp_path / "file").write_text("x")
    cases["file"] = (tmp_path / "file", "it is a file")
    (tmp_path / "random").mkdir()
    cases["random"] = (tmp_path / "random", "not a policy directory")
    for key, (path, words) in cases.items():
        with pytest.raises(PolicyLoadError, match=words) as info:
            load_policy(path)
        assert "\n" not in str(info.value), key

    (saved / "spec.json").unlink()
    with pytest.raises(PolicyLoadError, match=r"spec\.json is missing"):
        load_policy(saved)


def test_damaged_files_are_detected(saved):
    with (saved / "policy.keras").open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00garbage\x00")
    with pytest.raises(PolicyLoadError, match="damaged"):
        load_policy(saved)


def test_foreign_manifest_is_not_a_policy(saved):
    (saved / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(PolicyLoadError, match="foreign"):
        load_policy(saved)


def lambda_policy(spec: PolicySpec) -> keras.Model:
    obs = keras.Input(shape=spec.obs_shape)
    hidden = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(obs)
    return keras.Model(obs, keras.layers.Dense(ACT_DIM)(hidden))


class UnregisteredShift(keras.layers.Layer):
    """A custom layer deliberately not registered with Keras."""

    def call(self, inputs):
        return inputs + 1.0


def custom_policy(spec: PolicySpec) -> keras.Model:
    obs = keras.Input(shape=spec.obs_shape)
    return keras.Model(obs, keras.layers.Dense(ACT_DIM)(UnregisteredShift(name="shift")(obs)))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda_policy, "Lambda layer ('doubler')"),
        (custom_policy, "unregistered custom object 'UnregisteredShift'"),
    ],
)
def test_unsafe_objects_are_refused(tmp_path, monkeypatch, make, words):
    spec = make_spec()
    target = save_policy(tmp_path / "p", make(spec), spec, {})
    with pytest.raises(PolicyLoadError, match="safe_mode") as info:
        load_policy(target)
    assert words in str(info.value) and "\n" not in str(info.value)
    # Keras' safe_mode is the real guard: without the up-front scan it still refuses.
    monkeypatch.setattr(saving, "_unsafe_object", lambda path: None)
    with pytest.raises(PolicyLoadError, match="cannot load") as info:
        load_policy(target)
    assert "\n" not in str(info.value)
