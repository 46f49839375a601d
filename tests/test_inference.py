"""The NumPy forward pass equals the Keras model for every architecture option."""

from __future__ import annotations

import os
import pickle

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from test_models import CNN_OPTIONS, HISTORY, MLP_OPTIONS, make_spec, raw_batch

from models import build_policy
from models.inference import (
    ForwardMismatchError,
    KerasForward,
    NumpyForward,
    UnsupportedModelError,
    compile_forward,
    compile_numpy,
    probe_inputs,
)
from models.spec import PolicySpec


def _fit_a_little(built) -> None:
    """A few steps so batch-norm moving statistics and weights are not at their init."""
    obs, actions = raw_batch(built.spec)
    built.train_model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse",
                              run_eagerly=True)  # fmt: skip
    for _ in range(3):
        built.train_model.train_on_batch(obs, built.spec.normalize_actions(actions))


def _assert_same(model, forward, rows: int = 32) -> None:
    (x,) = probe_inputs(model, rows=rows, seed=7)
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(forward(x), expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize(
    "options", MLP_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
)
def test_mlp_options_compile_exactly(options):
    built = build_policy("mlp", make_spec(), {"hidden_sizes": [8, 6], **options}, seed=0)
    _fit_a_little(built)
    forward = compile_numpy(built.policy)
    assert isinstance(forward, NumpyForward)
    _assert_same(built.policy, forward)


@pytest.mark.parametrize(
    "options",
    [
        *CNN_OPTIONS,
        {"pooling": "avg", "pool_size": 3, "strides": [2, 1]},
        {"pooling": "max", "pool_size": 3, "batch_norm": "before"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_cnn_options_compile_exactly(options):
    spec = make_spec(history=HISTORY + 1)  # odd length: same padding pads unevenly
    built = build_policy("cnn1d", spec, {"filters": [4, 6], "head_sizes": [8], **options}, seed=0)
    _fit_a_little(built)
    _assert_same(built.policy, compile_numpy(built.policy))


def test_mlp_with_history_and_minmax_compiles_exactly():
    spec = PolicySpec.from_minmax(
        env_id="e", obs_min=[0.0, -1.0, 2.0, 5.0], obs_max=[1.0, 1.0, 6.0, 5.0],
        act_mean=[0.5, -2.0], act_variance=[4.0, 0.25], history=3,
    )  # fmt: skip
    built = build_policy("mlp", spec, {"hidden_sizes": [8]}, seed=1)
    _assert_same(built.policy, compile_numpy(built.policy))


def test_any_batch_size_and_a_single_row():
    built = build_policy("mlp", make_spec(), {"hidden_sizes": [8]}, seed=0)
    forward = compile_numpy(built.policy)
    for rows in (1, 2, 8):
        _assert_same(built.policy, forward, rows=rows)
    with pytest.raises(ValueError, match="expected inputs"):
        forward(np.zeros((1, 99), np.float32))


def test_forward_pass_pickles_without_tensorflow_objects():
    built = build_policy("mlp", make_spec(), {"hidden_sizes": [8], "batch_norm": "after"}, seed=0)
    forward = compile_numpy(built.policy)
    clone = pickle.loads(pickle.dumps(forward))
    (x,) = probe_inputs(built.policy, rows=4)
    np.testing.assert_array_equal(clone(x), forward(x))
    assert "tensorflow" not in pickle.dumps(forward).decode("latin-1")


def test_unknown_layer_is_refused_and_falls_back_to_tensorflow():
    inputs = keras.Input((5,))
    x = keras.layers.Dense(4)(inputs)
    x = keras.layers.UnitNormalization()(x)  # not in the NumPy op set
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    with pytest.raises(UnsupportedModelError, match="UnitNormalization"):
        compile_numpy(model)
    forward = compile_forward(model)
    assert isinstance(forward, KerasForward)
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    np.testing.assert_allclose(forward(x), np.asarray(model(x)), rtol=1e-6)


def test_branches_joins_and_several_inputs_compile_but_shared_layers_are_refused():
    first, second = keras.Input((5,)), keras.Input((2,))
    a, b = keras.layers.Dense(4)(first), keras.layers.Dense(4, activation="tanh")(first)
    joined = keras.layers.Concatenate()([keras.layers.Add()([a, b]), second])
    model = keras.Model([first, second], keras.layers.Dense(3)(joined))
    forward = compile_numpy(model)
    x = [np.random.default_rng(0).normal(size=(6, n)).astype(np.float32) for n in (5, 2)]
    np.testing.assert_allclose(forward(*x), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="2 input"):
        forward(x[0])
    shared = keras.layers.Dense(4)
    twice = keras.Model(first, keras.layers.Add()([shared(first), shared(first)]))
    with pytest.raises(UnsupportedModelError, match="shared"):
        compile_numpy(twice)


def test_a_wrong_compilation_is_caught_by_the_check(monkeypatch):
    built = build_policy("mlp", make_spec(), {"hidden_sizes": [8]}, seed=0)
    from models import inference

    monkeypatch.setitem(inference._ACTIVATIONS, "relu", lambda x: x)  # a broken op
    with pytest.raises(ForwardMismatchError):
        compile_numpy(built.policy)


def _image_model(padding: str, pool: str) -> keras.Model:
    """An image policy trunk of every 2D layer the compiler knows: pixels in, actions out."""
    layers = keras.layers
    inputs = keras.Input((21, 26, 3))
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(6, (3, 5), strides=(2, 1), padding=padding, activation="relu")(x)
    x = layers.SeparableConv2D(5, 3, depth_multiplier=2, padding=padding, activation="elu")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding=padding)(x)
    x = layers.BatchNormalization()(x)
    x = (layers.MaxPooling2D if pool == "max" else layers.AveragePooling2D)(
        (2, 3), strides=(1, 2), padding=padding
    )(x)
    x = (layers.GlobalMaxPooling2D if pool == "max" else layers.GlobalAveragePooling2D)()(x)
    return keras.Model(inputs, layers.Dense(4)(x))


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_image_layers_compile_exactly(padding, pool):
    keras.utils.set_random_seed(3)
    model = _image_model(padding, pool)
    forward = compile_forward(model)
    assert isinstance(forward, NumpyForward)
    pixels = np.random.default_rng(0).integers(0, 256, (5, 21, 26, 3)).astype(np.float32)
    expected = np.asarray(model(pixels, training=False))
    np.testing.assert_allclose(forward(pixels), expected, rtol=1e-4, atol=1e-4)
