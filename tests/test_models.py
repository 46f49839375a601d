"""Policy configs, spec and builders: every option builds and trains, normalization is exact."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pydantic
import pytest

from models import registry
from models.config import (
    ACTIVATIONS,
    INITIALIZERS,
    CNN1DConfig,
    MLPConfig,
    ModelConfig,
    StrictConfig,
    format_validation_error,
    parse_model_config,
)
from models.registry import (
    PolicyModels,
    UnknownPolicyError,
    available_policies,
    build_loss,
    build_policy,
    register_policy,
)
from models.spec import PolicySpec

OBS_DIM, ACT_DIM, HISTORY, BATCH = 5, 3, 4, 8


def make_spec(history: int = 1, seed: int = 0) -> PolicySpec:
    rng = np.random.default_rng(seed)
    return PolicySpec.from_zscore(
        env_id="test/Env-v0",
        obs_mean=rng.normal(3.0, 2.0, OBS_DIM),
        obs_variance=rng.uniform(0.5, 4.0, OBS_DIM),
        act_mean=rng.normal(-1.0, 1.0, ACT_DIM),
        act_variance=rng.uniform(0.1, 9.0, ACT_DIM),
        history=history,
        stats_source="synthetic",
        stats_digest="sha256:0",
    )


def raw_batch(spec: PolicySpec, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Raw observations and actions drawn around the spec's statistics."""
    rng = np.random.default_rng(seed)
    mean, std = spec.obs_scale()
    obs = mean + std * rng.normal(size=(BATCH, *spec.obs_shape))
    act_mean, act_std = spec.act_scale()
    actions = act_mean + act_std * rng.normal(size=(BATCH, spec.act_dim))
    return obs.astype(np.float32), actions.astype(np.float32)


def train_one_step(built: PolicyModels) -> float:
    """One optimizer step on z-scored targets; asserts the weights moved."""
    obs, actions = raw_batch(built.spec)
    before = [w.copy() for w in built.train_model.get_weights()]
    # Eager: tracing a graph costs ~1 s per model and these models take one step only.
    built.train_model.compile(optimizer="adam", loss=built.loss, run_eagerly=True)
    loss = float(built.train_model.train_on_batch(obs, built.spec.normalize_actions(actions)))
    after = built.train_model.get_weights()
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    return loss


def layer_names(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers]


# --- every option builds and trains ----------------------------------------------------------

MLP_OPTIONS = (
    [{"activation": name} for name in ACTIVATIONS]
    + [{"initializer": name} for name in INITIALIZERS]
    + [{"batch_norm": mode} for mode in ("none", "before", "after")]
    + [{"dropout": 0.3}, {"l1": 1e-3}, {"l2": 1e-3}, {"l1": 1e-4, "l2": 1e-3}]
    + [
        {"loss": "huber", "huber_delta": 0.5},
        {"activation": "leaky_relu", "leaky_relu_slope": 0.01},
    ]
)


@pytest.mark.parametrize(
    "options", MLP_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
)
def test_mlp_option_builds_and_trains(options):
    spec = make_spec()
    built = build_policy("mlp", spec, {"hidden_sizes": [8, 6], **options}, seed=0)
    assert built.policy.output_shape == (None, ACT_DIM)
    assert built.train_model.output_shape == (None, ACT_DIM)
    train_one_step(built)
    names = layer_names(built.policy)
    penalized = options.get("l1", 0) > 0 or options.get("l2", 0) > 0
    assert bool(built.train_model.losses) == penalized  # one penalty per kernel
    if penalized:
        assert len(built.train_model.losses) == 3
    if options.get("dropout"):
        drops = [layer for layer in built.policy.layers if isinstance(layer, keras.layers.Dropout)]
        assert [d.rate for d in drops] == [0.3, 0.3]
    mode = options.get("batch_norm", "none")
    if mode == "none":
        assert not any(name.endswith("_bn") for name in names)
    else:
        bn, act = names.index("hidden_0_bn"), names.index("hidden_0_act")
        assert (bn < act) == (mode == "before")
        assert built.policy.get_layer("hidden_0").use_bias == (mode == "after")


def test_mlp_activation_and_initializer_are_the_configured_ones():
    built = build_policy(
        "mlp",
        make_spec(),
        {"hidden_sizes": [4], "activation": "selu", "initializer": "lecun_normal"},
    )
    assert built.policy.get_layer("hidden_0_act").activation.__name__ == "selu"
    assert isinstance(
        built.policy.get_layer("hidden_0").kernel_initializer, keras.initializers.LecunNormal
    )
    # The linear output layer is Glorot whatever the hidden layers use.
    output = built.policy.get_layer(registry.TRAIN_OUTPUT_LAYER)
    assert isinstance(output.kernel_initializer, keras.initializers.GlorotUniform)
    assert output.activation.__name__ == "linear"


def test_mlp_flattens_an_observation_history():
    spec = make_spec(history=3)
    built = build_policy("mlp", spec, {"hidden_sizes": [4]})
    assert built.policy.input_shape == (None, 3, OBS_DIM)
    train_one_step(built)


CNN_OPTIONS = [
    {"pooling": pooling, "separable": separable, "strides": strides}
    for pooling in ("none", "max", "avg")
    for separable in (False, True)
    for strides in (1, 2)
] + [
    {"batch_norm": "before", "dropout": 0.2, "l1": 1e-4, "l2": 1e-4},
    {"batch_norm": "after", "activation": "elu", "initializer": "he_normal", "head_sizes": []},
    {"separable": True, "l2": 1e-3, "kernel_sizes": [5, 2], "loss": "huber"},
]


@pytest.mark.parametrize(
    "options", CNN_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
)
def test_cnn_option_builds_and_trains(options):
    spec = make_spec(history=HISTORY)
    built = build_policy("cnn1d", spec, {"filters": [4, 6], "head_sizes": [8], **options}, seed=0)
    assert built.policy.input_shape == (None, HISTORY, OBS_DIM)
    assert built.policy.output_shape == (None, ACT_DIM)
    train_one_step(built)
    conv = built.policy.get_layer("conv_0")
    kind = keras.layers.SeparableConv1D if options.get("separable") else keras.layers.Conv1D
    assert isinstance(conv, kind)
    assert conv.strides == (options.get("strides", 1),)
    pooling = options.get("pooling", "none")
    assert ("conv_0_pool" in layer_names(built.policy)) == (pooling != "none")
    if options.get("separable") and options.get("l2"):
        assert len(built.train_model.losses) == 2 * 2 + 2  # depthwise + pointwise per conv


def test_cnn_time_axis_shrinks_with_strides_and_pooling():
    spec = make_spec(history=8)
    built = build_policy(
        "cnn1d", spec, {"filters": [4, 4], "strides": [2, 1], "pooling": "max", "head_sizes": []}
    )
    # 8 -(stride 2)-> 4 -(pool 2)-> 2 -(stride 1)-> 2 -(pool 2)-> 1
    assert built.policy.get_layer("flatten").output.shape == (None, 4)


def test_cnn_needs_a_history():
    with pytest.raises(ValueError, match="history >= 2"):
        build_policy("cnn1d", make_spec(history=1))


# --- normalization inside the model ----------------------------------------------------------


@pytest.mark.parametrize("name, history", [("mlp", 1), ("cnn1d", HISTORY)])
def test_public_output_is_the_unnormalized_train_output(name, history):
    spec = make_spec(history=history)
    built = build_policy(name, spec, {"batch_norm": "after", "dropout": 0.2}, seed=3)
    obs, _ = raw_batch(spec)
    normalized = np.asarray(built.train_model(obs))
    raw = np.asarray(built.policy(obs))
    np.testing.assert_allclose(raw, spec.denormalize_actions(normalized), rtol=1e-6, atol=1e-6)
    # The two models share every layer: training one trains the other.
    assert {id(w) for w in built.train_model.weights} <= {id(w) for w in built.policy.weights}


def test_zscore_parameters_are_applied_exactly():
    spec = PolicySpec.from_zscore(
        env_id="e",
        obs_mean=[1.0, -2.0, 0.5],
        obs_variance=[4.0, 0.25, 1.0],
        act_mean=[10.0, -3.0],
        act_variance=[9.0, 0.01],
    )
    built = build_policy("mlp", spec, {"hidden_sizes": [2]})
    obs = np.array([[3.0, -2.5, 0.5], [1.0, 0.0, -1.5]], dtype=np.float32)
    expected = np.array([[1.0, -1.0, 0.0], [0.0, 4.0, -2.0]], dtype=np.float32)
    got = np.asarray(built.policy.get_layer(registry.OBS_NORM_LAYER)(obs))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(spec.normalize_observations(obs), expected, rtol=0, atol=1e-6)
    inverse = built.policy.get_layer(registry.ACTION_LAYER)
    z = np.array([[1.0, -2.0], [0.0, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(
        np.asarray(inverse(z)), [[13.0, -3.2], [10.0, -2.95]], rtol=0, atol=1e-5
    )
    np.testing.assert_allclose(spec.normalize_actions(spec.denormalize_actions(z)), z, atol=1e-6)


def test_minmax_parameters_are_applied_exactly():
    spec = PolicySpec.from_minmax(
        env_id="e",
        obs_min=[0.0, -1.0, 2.0, 5.0],
        obs_max=[1.0, 1.0, 6.0, 5.0],  # the last feature is constant
        act_mean=[0.0],
        act_variance=[1.0],
        history=2,
    )
    assert spec.obs_norm == "minmax"
    assert spec.obs_variance == (1.0, 4.0, 16.0, 1.0)
    built = build_policy("cnn1d", spec, {"filters": [2], "head_sizes": []})
    obs = np.array([[[0.5, 0.0, 4.0, 5.0], [1.0, -1.0, 2.0, 7.0]]], dtype=np.float32)
    expected = np.array([[[0.5, 0.5, 0.5, 0.0], [1.0, 0.0, 0.0, 2.0]]], dtype=np.float32)
    got = np.asarray(built.policy.get_layer(registry.OBS_NORM_LAYER)(obs))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


# --- seeds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, history, options",
    [
        ("mlp", 1, {"hidden_sizes": [8, 8], "initializer": "he_normal"}),
        ("cnn1d", HISTORY, {"filters": [4, 4], "separable": True, "head_sizes": [8]}),
    ],
)
def test_same_seed_same_initial_weights_different_seed_different(name, history, options):
    spec = make_spec(history=history)

    def weights(seed):
        return build_policy(name, spec, options, seed=seed).policy.get_weights()

    first, again, other = weights(7), weights(7), weights(8)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    kernels = [i for i, w in enumerate(first) if w.ndim >= 2]
    assert all(not np.array_equal(first[i], other[i]) for i in kernels)


def test_layers_do_not_share_a_seed():
    built = build_policy("mlp", make_spec(), {"hidden_sizes": [8, 8, 8]}, seed=0)
    second, third = (built.policy.get_layer(f"hidden_{i}").kernel.numpy() for i in (1, 2))
    assert second.shape == third.shape and not np.array_equal(second, third)


def test_same_seed_trains_identically_with_dropout():
    spec = make_spec()

    def trained(seed):
        built = build_policy("mlp", spec, {"hidden_sizes": [8], "dropout": 0.5}, seed=seed)
        train_one_step(built)
        return built.policy.get_weights()

    for a, b in zip(trained(2), trained(2), strict=True):
        np.testing.assert_array_equal(a, b)


# --- registry and loss ------------------------------------------------------------------------


def test_registry_lists_builtins_and_rejects_unknown_names():
    assert {"mlp", "cnn1d"} <= set(available_policies())
    with pytest.raises(UnknownPolicyError, match="did you mean 'mlp'"):
        build_policy("mpl", make_spec())


def test_build_policy_accepts_a_name_a_mapping_or_a_config_object():
    spec = make_spec()
    by_name = build_policy("mlp", spec, {"hidden_sizes": [4]}, seed=1)
    by_mapping = build_policy({"name": "mlp", "hidden_sizes": [4]}, spec, seed=1)
    by_object = build_policy(MLPConfig(hidden_sizes=[4]), spec, seed=1)
    assert by_name.config == by_mapping.config == by_object.config
    for a, b in zip(by_name.policy.get_weights(), by_object.policy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError):
        build_policy(MLPConfig(), spec, {"hidden_sizes": [4]})


def test_register_policy_adds_an_architecture():
    class TinyConfig(MLPConfig):
        name: str = "tiny_test"  # type: ignore[assignment]

    @register_policy("tiny_test", TinyConfig)
    def build_tiny(x, spec, config, blocks):
        return blocks.dense(x, 2, name="only")

    try:
        assert "tiny_test" in available_policies()
        built = build_policy("tiny_test", make_spec())
        assert "only" in layer_names(built.policy)
        with pytest.raises(ValueError, match="already registered"):
            register_policy("tiny_test", TinyConfig)(build_tiny)
        with pytest.raises(ValueError, match="must default to"):
            register_policy("other_name", TinyConfig)
    finally:
        registry._REGISTRY.pop("tiny_test", None)


def test_loss_choice():
    assert isinstance(build_loss(MLPConfig(), 1), keras.losses.MeanSquaredError)
    huber = build_loss(MLPConfig(loss="huber", huber_delta=0.3), 1)
    assert isinstance(huber, keras.losses.Huber)
    y, p = np.zeros((1, 1), np.float32), np.full((1, 1), 2.0, np.float32)
    assert float(huber(y, p)) == pytest.approx(0.3 * (2.0 - 0.5 * 0.3))


def test_gaussian_nll_is_the_log_likelihood_of_the_mean_and_learned_spread():
    from models.gaussian import GaussianNLL

    y = np.array([[0.5, -1.0]], np.float32)
    pred = np.array([[0.0, -1.0, np.log(2.0), 0.0]], np.float32)  # means, then log stds
    expected = np.mean([0.5 * (0.5 / 2.0) ** 2 + np.log(2.0), 0.0])
    assert float(GaussianNLL(2)(y, pred)) == pytest.approx(expected, rel=1e-6)
    assert isinstance(build_loss(MLPConfig(loss="gaussian_nll"), 2), GaussianNLL)


def test_gaussian_head_trains_the_spread_and_the_policy_acts_with_the_mean():
    spec = make_spec()
    built = build_policy("mlp", spec, {"hidden_sizes": [16], "loss": "gaussian_nll"}, seed=0)
    obs, actions = raw_batch(spec)
    assert built.train_model.output.shape[-1] == 2 * spec.act_dim
    assert built.policy.output.shape[-1] == spec.act_dim
    built.train_model.compile(optimizer="adam", loss=built.loss, metrics=built.metrics)
    history = built.train_model.fit(obs, spec.normalize_actions(actions), epochs=3, verbose=0)
    assert "action_mse" in history.history
    log_std = built.train_model.get_layer("gaussian_head").get_weights()[0]
    assert log_std.shape == (spec.act_dim,) and np.abs(log_std).max() > 0
    mean = np.asarray(built.train_model(obs))[:, : spec.act_dim]
    act_mean, act_std = spec.act_scale()
    np.testing.assert_allclose(built.policy(obs), mean * act_std + act_mean, rtol=1e-5, atol=1e-5)
    again = PolicyModels.from_policy(built.policy, spec, built.config)
    assert again.train_model.output.shape[-1] == 2 * spec.act_dim


def test_gaussian_head_layer_round_trips_through_keras_serialization():
    from models.gaussian import AppendLogStd

    layer = AppendLogStd(3, initial=-0.5, name="head")
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, AppendLogStd) and again.units == 3 and again.initial == -0.5
    out = np.asarray(again(np.zeros((2, 3), np.float32)))
    np.testing.assert_allclose(out[:, 3:], -0.5)


def test_train_model_recovered_from_a_policy():
    spec = make_spec()
    built = build_policy("mlp", spec, {"hidden_sizes": [4]})
    again = PolicyModels.from_policy(built.policy, spec, built.config)
    obs, _ = raw_batch(spec)
    np.testing.assert_allclose(again.train_model(obs), built.train_model(obs), atol=1e-6)


# --- configs ----------------------------------------------------------------------------------


def one_line_error(data) -> str:
    with pytest.raises(pydantic.ValidationError) as info:
        parse_model_config(data)
    line = format_validation_error(info.value)
    assert "\n" not in line
    return line


def test_unknown_key_names_the_key_and_the_closest_valid_one():
    line = one_line_error({"name": "mlp", "dropuot": 0.1})
    assert "dropuot" in line and "unknown key" in line and "'dropout'" in line
    line = one_line_error({"name": "cnn1d", "filtres": [3]})
    assert "filtres" in line and "'filters'" in line


@pytest.mark.parametrize(
    "data, field, words",
    [
        ({"name": "mlp", "dropout": 1.0}, "dropout", "less than 1"),
        ({"name": "mlp", "dropout": -0.1}, "dropout", "greater than or equal"),
        ({"name": "mlp", "hidden_sizes": []}, "hidden_sizes", "at least one"),
        ({"name": "mlp", "hidden_sizes": [0]}, "hidden_sizes.0", "greater than 0"),
        ({"name": "mlp", "activation": "rellu"}, "activation", "did you mean 'relu'"),
        ({"name": "mlp", "initializer": "he"}, "initializer", "not one of"),
        ({"name": "mlp", "batch_norm": "middle"}, "batch_norm", "not one of"),
        ({"name": "mlp", "l2": -1}, "l2", "greater than or equal"),
        ({"name": "mlp", "huber_delta": 0}, "huber_delta", "greater than 0"),
        ({"name": "cnn1d", "pooling": "sum"}, "pooling", "not one of"),
        ({"name": "cnn1d", "filters": [4, 4], "strides": [1]}, "strides", "one entry per"),
        ({"name": "cnn1d", "filters": []}, "filters", "at least one"),
        ({"name": "transformer"}, "config", "unknown name 'transformer'"),
        ({"hidden_sizes": [3]}, "config", "missing key 'name'"),
    ],
)
def test_invalid_values_give_one_line_naming_the_field(data, field, words):
    line = one_line_error(data)
    assert field in line and words in line, line


def test_cnn_single_numbers_repeat_for_every_convolution():
    config = CNN1DConfig(filters=[4, 4, 4], kernel_sizes=5, strides=2)
    assert config.kernel_sizes == [5, 5, 5] and config.strides == [2, 2, 2]
    assert CNN1DConfig(filters=[4]).kernel_sizes == [3]


def test_model_config_embeds_in_a_larger_config():
    class RunConfig(StrictConfig):
        model: ModelConfig = MLPConfig()

    assert isinstance(RunConfig.model_validate({"model": {"name": "cnn1d"}}).model, CNN1DConfig)

    class DataDefault(StrictConfig):
        model: ModelConfig = pydantic.Field(default_factory=lambda: {"name": "cnn1d"})

    assert isinstance(DataDefault().model, CNN1DConfig)  # defaults are validated too
    with pytest.raises(pydantic.ValidationError) as info:
        RunConfig.model_validate({"model": {"name": "mlp", "hiden_sizes": [3]}})
    line = format_validation_error(info.value)
    assert line.startswith("model.mlp.hiden_sizes: unknown key") and "'hidden_sizes'" in line
    with pytest.raises(pydantic.ValidationError) as info:
        RunConfig.model_validate({"modle": {}})
    assert "did you mean 'model'" in format_validation_error(info.value)


def test_every_config_field_is_documented():
    for cls in (MLPConfig, CNN1DConfig):
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no docstring"


# --- spec ---------------------------------------------------------------------------------------


def test_spec_json_round_trip_is_exact():
    spec = make_spec(history=3)
    again = PolicySpec.from_json(spec.to_json())
    assert again == spec
    assert again.obs_shape == (3, OBS_DIM)


def test_spec_floors_constant_features_and_rejects_bad_values():
    spec = PolicySpec.from_zscore(
        env_id="e", obs_mean=[1, 2], obs_variance=[0.0, 2.0], act_mean=[0], act_variance=[1e-20]
    )
    assert spec.obs_variance == (1.0, 2.0) and spec.act_variance == (1.0,)
    base = spec.to_dict()
    for change, words in [
        ({"obs_variance": [0.0, 1.0]}, "must be positive"),
        ({"obs_mean": [1.0]}, "expected 2"),
        ({"act_mean": [float("nan")]}, "NaN"),
        ({"history": 0}, "positive integer"),
        ({"obs_norm": "robust"}, "obs_norm"),
        ({"spec_version": 99}, "spec_version"),
        ({"extra": 1}, "unknown spec key"),
    ]:
        with pytest.raises(ValueError, match=words):
            PolicySpec.from_dict({**base, **change})
    incomplete = {k: v for k, v in base.items() if k != "act_mean"}
    with pytest.raises(ValueError, match="act_mean"):
        PolicySpec.from_dict(incomplete)
