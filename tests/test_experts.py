"""The shipped experts: loading from the pybullet wheel and their NumPy forward pass."""

from __future__ import annotations

import ast
import shutil

import numpy as np
import pytest

import sim.assets
from sim import AssetError, UnknownExpertError, expert_names, load_expert
from sim.experts import RUN_WEIGHTS_SCRIPT
from sim.skills import WALK

WALK_CHECKPOINT = WALK.checkpoint


@pytest.fixture(scope="module")
def walk_expert():
    return load_expert("humanoid_walk")


def test_names():
    assert expert_names() == ["humanoid_backflip", "humanoid_jump", "humanoid_run", "humanoid_walk"]
    with pytest.raises(UnknownExpertError, match="unknown expert 'nope'"):
        load_expert("nope")


def test_walk_matches_independent_tensorflow_graph(walk_expert):
    """Rebuild the actor in TensorFlow ops straight from the checkpoint and compare."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(walk_expert.source)

    def t(name):
        return tf.constant(reader.get_tensor(name), dtype=tf.float64)

    rng = np.random.default_rng(0)
    s_mean, s_std = t("agent/resource/s_norm/mean"), t("agent/resource/s_norm/std")
    obs = s_mean.numpy() + rng.normal(size=(64, 197)) * s_std.numpy()
    x = (tf.constant(obs) - s_mean) / s_std
    x = tf.nn.relu(
        tf.matmul(x, t("agent/main/actor/0/dense/kernel")) + t("agent/main/actor/0/dense/bias")
    )
    x = tf.nn.relu(
        tf.matmul(x, t("agent/main/actor/1/dense/kernel")) + t("agent/main/actor/1/dense/bias")
    )
    x = tf.matmul(x, t("agent/main/actor/dense/kernel")) + t("agent/main/actor/dense/bias")
    expected = (x * t("agent/resource/a_norm/std") + t("agent/resource/a_norm/mean")).numpy()

    np.testing.assert_allclose(walk_expert.act(obs), expected, rtol=1e-9, atol=1e-9)
    # single observation and batch agree
    np.testing.assert_allclose(walk_expert.act(obs[3]), expected[3], rtol=1e-9, atol=1e-9)
    assert walk_expert.act(obs).shape == (64, 36)
    assert walk_expert.action_scale.shape == (36,) and np.all(walk_expert.action_scale > 0)


def test_run_matches_reference_policy_formula():
    """Parse the arrays by evaluating each literal separately and apply the reference rule."""
    path = sim.assets.pybullet_envs_path(RUN_WEIGHTS_SCRIPT)
    tree = ast.parse(path.read_text())
    arrays = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "").startswith(
            "weights_"
        ):
            source = ast.get_source_segment(path.read_text(), node.value)
            arrays[node.targets[0].id] = eval(source, {"np": np})  # test-only, literal arrays
    expert = load_expert("humanoid_run")
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(16, 44))
    for ob, action in zip(obs, expert.act(obs), strict=True):
        x = ob.copy()
        x[0] += -1.4 + 0.8  # what the reference policy does to its (mutable) input
        x = np.maximum(x @ arrays["weights_dense1_w"] + arrays["weights_dense1_b"], 0)
        x = np.maximum(x @ arrays["weights_dense2_w"] + arrays["weights_dense2_b"], 0)
        np.testing.assert_allclose(
            action, x @ arrays["weights_final_w"] + arrays["weights_final_b"]
        )
    before = obs.copy()
    expert.act(obs)
    np.testing.assert_array_equal(obs, before)  # unlike the reference, inputs are not mutated


def test_bad_observation_shape(walk_expert):
    with pytest.raises(ValueError, match=r"expects observations of shape \(197,\)"):
        walk_expert.act(np.zeros(44))


def _fake_wheel(tmp_path, monkeypatch):
    """A copy of the pybullet data/env folders that the asset lookup resolves to."""
    real = {name: sim.assets._package_dir(name) for name in ("pybullet_data", "pybullet_envs")}
    fake = {name: tmp_path / name for name in real}
    (fake["pybullet_data"] / "data/policies/humanoid3d").mkdir(parents=True)
    (fake["pybullet_envs"] / "examples").mkdir(parents=True)
    for suffix in (".index", ".data-00000-of-00001"):
        src = real["pybullet_data"] / (WALK_CHECKPOINT + suffix)
        shutil.copy(src, fake["pybullet_data"] / (WALK_CHECKPOINT + suffix))
    shutil.copy(
        real["pybullet_envs"] / RUN_WEIGHTS_SCRIPT, fake["pybullet_envs"] / RUN_WEIGHTS_SCRIPT
    )
    monkeypatch.setattr(sim.assets, "_package_dir", lambda name: fake[name])
    return fake


def test_missing_checkpoint_names_the_file(tmp_path, monkeypatch):
    fake = _fake_wheel(tmp_path, monkeypatch)
    (fake["pybullet_data"] / (WALK_CHECKPOINT + ".index")).unlink()
    with pytest.raises(AssetError, match=r"humanoid3d_walk\.ckpt\.index: file missing"):
        load_expert("humanoid_walk")


def test_corrupt_checkpoint_names_the_file(tmp_path, monkeypatch):
    fake = _fake_wheel(tmp_path, monkeypatch)
    (fake["pybullet_data"] / (WALK_CHECKPOINT + ".index")).write_bytes(b"garbage" * 10)
    with pytest.raises(AssetError, match=r"humanoid3d_walk\.ckpt: cannot read TF checkpoint"):
        load_expert("humanoid_walk")


def test_changed_run_weights_name_the_file(tmp_path, monkeypatch):
    fake = _fake_wheel(tmp_path, monkeypatch)
    script = fake["pybullet_envs"] / RUN_WEIGHTS_SCRIPT
    script.write_text(script.read_text().replace("weights_final_b = ", "renamed_final_b = "))
    with pytest.raises(
        AssetError, match=r"enjoy_TF_HumanoidBulletEnv_v0_2017may\.py: missing .*weights_final_b"
    ):
        load_expert("humanoid_run")
    script.unlink()
    with pytest.raises(AssetError, match="file missing"):
        load_expert("humanoid_run")
