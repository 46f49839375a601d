"""``cnn2d``: image policies build from config, map raw frames (and state) to raw actions,
compile exactly to the NumPy forward pass, and save and reload alone."""

from __future__ import annotations

import dataclasses
import os
import pickle

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pydantic
import pytest
from test_models import make_spec, train_one_step

from datasets.store.schema import CameraSpec
from models import build_policy, load_policy, save_policy
from models.config import CNN2DConfig, format_validation_error, parse_model_config
from models.inference import NumpyForward, compile_forward, compile_numpy
from models.spec import IMAGE_INPUT, OBS_INPUT, PolicySpec

CAMERA = CameraSpec(20, 16, "follow")


def image_spec(inputs: str = "image+state", history: int = 1) -> PolicySpec:
    return dataclasses.replace(make_spec(history=history), inputs=inputs, camera=CAMERA)


def feed(spec: PolicySpec, rows: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean, std = spec.obs_scale()
    data = {IMAGE_INPUT: rng.integers(0, 256, (rows, *spec.image_shape), dtype=np.uint8)}
    if spec.uses_state:
        data[OBS_INPUT] = (mean + std * rng.normal(size=(rows, *spec.obs_shape))).astype(np.float32)
    return data


def call(model, data: dict[str, np.ndarray]) -> np.ndarray:
    """The model's output for named inputs (a single-input model takes the array itself)."""
    return np.asarray(model(data if len(data) > 1 else next(iter(data.values())), training=False))


OPTIONS = [
    {},
    {"inputs": "image"},
    {"separable": True, "pooling": "max", "batch_norm": "before"},
    {"residual_blocks": 2, "batch_norm": "after", "pooling": "avg", "pixel_scale": "symmetric"},
    {"residual_blocks": 1, "separable": True, "activation": "leaky_relu", "dropout": 0.1},
    {"filters": [4], "kernel_sizes": 7, "strides": 1, "head_sizes": [], "activation": "elu"},
]


@pytest.mark.parametrize("history", [1, 3])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_every_option_builds_trains_and_compiles_exactly(options, history):
    spec = image_spec(options.get("inputs", "image+state"), history)
    built = build_policy({"name": "cnn2d", **options}, spec, seed=1)
    assert [t.name for t in built.policy.inputs] == list(spec.input_shapes)
    assert built.policy.inputs[0].dtype == "uint8"  # raw pixels in: scaling is inside
    forward = compile_numpy(built.policy)  # checks itself against Keras on probe inputs
    data = feed(spec)
    expected = call(built.policy, data)
    np.testing.assert_allclose(forward(*data.values()), expected, rtol=1e-4, atol=1e-4)
    assert expected.shape == (4, spec.act_dim)
    pickle.loads(pickle.dumps(forward))  # travels to rollout workers


def test_frames_are_stacked_oldest_first_along_the_channels():
    spec = image_spec("image", history=2)
    built = build_policy({"name": "cnn2d", "inputs": "image"}, spec)
    import keras

    stacked = keras.Model(built.policy.input, built.policy.get_layer("pixel_scale").output)
    frames = feed(spec)[IMAGE_INPUT]
    out = np.asarray(stacked(frames))
    assert out.shape == (4, CAMERA.height, CAMERA.width, 6)
    np.testing.assert_allclose(out[..., :3], frames[:, 0] / 255.0, atol=1e-6)
    np.testing.assert_allclose(out[..., 3:], frames[:, 1] / 255.0, atol=1e-6)


def test_the_state_matters_only_with_image_plus_state():
    for inputs, changes in (("image+state", True), ("image", False)):
        spec = image_spec(inputs)
        built = build_policy({"name": "cnn2d", "inputs": inputs}, spec, seed=0)
        data = feed(spec)
        moved = dict(data)
        if OBS_INPUT in data:
            moved[OBS_INPUT] = data[OBS_INPUT] + 1.0
        differs = not np.allclose(call(built.policy, data), call(built.policy, moved))
        assert differs == changes


def test_one_training_step_moves_the_weights():
    spec = image_spec()
    built = build_policy({"name": "cnn2d", "filters": [4, 4]}, spec)
    data = feed(spec, rows=8)
    before = [w.copy() for w in built.train_model.get_weights()]
    built.train_model.compile(optimizer="adam", loss=built.loss, run_eagerly=True)
    targets = np.random.default_rng(0).normal(size=(8, spec.act_dim)).astype(np.float32)
    loss = built.train_model.train_on_batch(data, targets)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in
               zip(before, built.train_model.get_weights(), strict=True))  # fmt: skip
    assert train_one_step(build_policy("mlp", make_spec())) > 0  # state models unchanged


def test_saved_image_policy_reloads_alone_and_matches(tmp_path):
    spec = image_spec(history=2)
    built = build_policy({"name": "cnn2d", "residual_blocks": 1}, spec, seed=3)
    path = save_policy(tmp_path / "p", built.policy, spec, built.config)
    loaded = load_policy(path)
    assert loaded.spec == spec and loaded.spec.camera == CAMERA
    data = feed(spec)
    np.testing.assert_array_equal(call(loaded.model, data), call(built.policy, data))
    assert isinstance(compile_forward(loaded.model), NumpyForward)


def test_spec_round_trips_and_refuses_a_camera_that_does_not_fit_its_inputs():
    spec = image_spec("image", history=3)
    again = PolicySpec.from_json(spec.to_json())
    assert again == spec and again.image_shape == (3, 16, 20, 3)
    assert again.input_shapes == {IMAGE_INPUT: (3, 16, 20, 3)}
    with pytest.raises(ValueError, match="camera"):
        dataclasses.replace(make_spec(), inputs="image")
    with pytest.raises(ValueError, match="camera"):
        dataclasses.replace(make_spec(), camera=CAMERA)
    with pytest.raises(ValueError, match="inputs"):
        dataclasses.replace(make_spec(), inputs="pixels", camera=CAMERA)


def test_config_and_spec_must_agree_on_what_the_policy_sees():
    with pytest.raises(ValueError, match=r"cnn2d sees 'image\+state'.*'state'"):
        build_policy("cnn2d", make_spec())
    with pytest.raises(ValueError, match=r"mlp sees 'state'.*'image\+state'"):
        build_policy("mlp", image_spec())
    with pytest.raises(ValueError, match=r"'image'.*'image\+state'"):
        build_policy({"name": "cnn2d", "inputs": "image"}, image_spec())


def test_config_validation_names_the_field():
    config = parse_model_config({"name": "cnn2d", "kernel_sizes": 3, "filters": [8, 8]})
    assert isinstance(config, CNN2DConfig) and config.kernel_sizes == [3, 3]
    assert config.strides == [2, 2]  # the default's last entry, repeated
    for bad, where in (({"strides": [1]}, "strides needs one entry"),
                       ({"inputs": "state"}, "cnn2d.inputs"),
                       ({"residual_blocks": -1}, "residual_blocks"),
                       ({"pixel_scale": "raw"}, "pixel_scale")):  # fmt: skip
        with pytest.raises(pydantic.ValidationError) as info:
            parse_model_config({"name": "cnn2d", **bad})
        assert where in format_validation_error(info.value)
