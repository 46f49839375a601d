"""``pipeline train`` without ``--config`` trains the measured recipe of the data's env."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.algorithms.train_config import recorded_env, resolve_train_config
from pipeline.training.config import config_to_dict, load_config
from pipeline.training.recipes import RUN_RECIPE, WALK_RECIPE, recipe_for

ROOT = Path(__file__).resolve().parents[1]
WALK = "sim/HumanoidWalk-v0"


def _resolve(data: Path | None, config: Path | None = None, overrides: list[str] | None = None):
    env_id = recorded_env(data) if data is not None else None
    return resolve_train_config(config, overrides or [], env_id=env_id)


@pytest.mark.parametrize(("name", "recipe"), [("walk_mlp", WALK_RECIPE), ("run_mlp", RUN_RECIPE)])
def test_the_shipped_configs_are_the_recipes(name, recipe):
    shipped = load_config(ROOT / "configs" / f"{name}.yaml")
    assert config_to_dict(shipped) == config_to_dict(load_config(None, recipe))


def test_walk_recipe_decays_over_the_whole_run_and_keeps_the_last_weights():
    config = load_config(None, WALK_RECIPE)
    assert config.schedule.name == "cosine" and config.schedule.decay_steps is None
    assert config.training.early_stopping_patience is None
    assert not config.training.restore_best
    assert config.data.val_fraction <= 0.05


def test_walk_data_without_config_gets_the_walk_recipe(walk_data):
    assert recorded_env(walk_data) == WALK
    expected = load_config(None, [*recipe_for(WALK), "tracking.enabled=true"])
    assert config_to_dict(_resolve(walk_data)) == config_to_dict(expected)


def test_overrides_apply_on_top_of_the_recipe(walk_data):
    config = _resolve(walk_data, overrides=["model.hidden_sizes=[64]"])
    assert config.model.hidden_sizes == [64]
    assert config.schedule.name == "cosine"  # the rest of the recipe stays


def test_another_architecture_drops_the_recipes_model_settings(walk_data):
    config = _resolve(walk_data, overrides=["model.name=cnn1d", "data.history=4"])
    assert config.model.name == "cnn1d" and config.data.history == 4
    assert config.data.batch_size == 64  # the rest of the recipe stays


def test_a_config_file_replaces_the_recipe(walk_data):
    config = _resolve(walk_data, config=ROOT / "configs" / "run_cnn.yaml")
    assert config_to_dict(config) == config_to_dict(load_config(ROOT / "configs" / "run_cnn.yaml"))


def test_run_data_gets_the_run_recipe_and_unreadable_data_the_typed_defaults(run_data, tmp_path):
    expected = load_config(None, [*recipe_for("sim/HumanoidRun-v0"), "tracking.enabled=true"])
    assert config_to_dict(_resolve(run_data)) == config_to_dict(expected)
    defaults = config_to_dict(load_config(None))
    assert config_to_dict(_resolve(tmp_path / "missing.h5")) == defaults
    assert recorded_env(tmp_path / "missing.h5") is None
    assert recipe_for("sim/NoSuchEnv-v0") == []
