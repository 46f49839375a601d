"""Warm start and freezing: ``pipeline train --init-from POLICY [--freeze N]
[--keep-normalization]`` (what DAgger's refits and transfer learning build on)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import load_policy
from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.cli import main
from pipeline.training.config import load_config

FAST = ["model.hidden_sizes=[32,32]", "data.batch_size=128", "training.epochs=2"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _learned(model) -> dict[str, list[np.ndarray]]:
    skip = ("obs_norm", "action")
    return {layer.name: layer.get_weights() for layer in model.layers
            if layer.weights and layer.name not in skip}  # fmt: skip


@pytest.fixture(scope="module")
def source(run_data, tmp_path_factory) -> Path:
    """A trained 32-32 policy to start from."""
    out = tmp_path_factory.mktemp("warm") / "source"
    train_from_file(run_data, load_config(None, [*FAST, "seed=3"]), out)
    return out


def test_warm_start_begins_at_the_source_weights(run_data, source):
    from datasets import open_dataset
    from pipeline.training.inputs import TrainingInputs, dataset_digest
    from pipeline.training.model import build_model

    config = load_config(None, [*FAST, f"init.from_policy={source}"])
    loaded = load_policy(source / "policy")
    with open_dataset(run_data) as ds:
        inputs = TrainingInputs.prepare(ds, config, dataset_digest(ds))
    built = build_model(config, inputs.spec, total_steps=10, source=loaded)
    ours, theirs = _learned(built.policy), _learned(loaded.model)
    assert list(ours) == list(theirs) == ["hidden_0", "hidden_1", "action_normalized"]
    for name in ours:
        for mine, original in zip(ours[name], theirs[name], strict=True):
            np.testing.assert_array_equal(mine, original)
    # Without a source the same config starts elsewhere (from the seed).
    fresh = build_model(config, inputs.spec, total_steps=10)
    assert not np.array_equal(_learned(fresh.policy)["hidden_0"][0], theirs["hidden_0"][0])


def test_frozen_blocks_keep_the_source_weights_and_the_rest_trains(run_data, source, tmp_path):
    out = tmp_path / "frozen"
    config = load_config(None, [*FAST, f"init.from_policy={source}", "init.freeze=1"])
    train_from_file(run_data, config, out)
    after, before = (
        _learned(load_policy(out / "policy").model),
        _learned(load_policy(source / "policy").model),
    )
    for mine, original in zip(after["hidden_0"], before["hidden_0"], strict=True):
        np.testing.assert_array_equal(mine, original)
    assert not np.array_equal(after["hidden_1"][0], before["hidden_1"][0])
    assert not np.array_equal(after["action_normalized"][0], before["action_normalized"][0])
    # The run and the saved policy say where the weights came from.
    record = json.loads((out / "training_run.json").read_text())
    assert record["init_from"]["policy"] == str(source)
    assert record["init_from"]["freeze"] == 1
    saved = json.loads((out / "policy" / "config.json").read_text())
    assert saved["init"] == {"from_policy": str(source), "freeze": 1, "keep_normalization": False}


def test_normalization_from_new_data_unless_kept(run_data, source, tmp_path):
    source_spec = load_policy(source / "policy").spec
    # Two episodes, not the source's split: different statistics.
    base = [*FAST, "training.epochs=1", "data.max_episodes=2", "data.val_fraction=0.5"]
    fresh = tmp_path / "fresh"
    train_from_file(run_data, load_config(None, [*base, f"init.from_policy={source}"]), fresh)
    kept = tmp_path / "kept"
    overrides = [*base, f"init.from_policy={source}", "init.keep_normalization=true"]
    train_from_file(run_data, load_config(None, overrides), kept)
    fresh_spec, kept_spec = load_policy(fresh / "policy").spec, load_policy(kept / "policy").spec
    assert not np.allclose(fresh_spec.obs_mean, source_spec.obs_mean)
    np.testing.assert_array_equal(kept_spec.obs_mean, source_spec.obs_mean)
    np.testing.assert_array_equal(kept_spec.obs_variance, source_spec.obs_variance)
    np.testing.assert_array_equal(kept_spec.act_variance, source_spec.act_variance)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--init-from", "{src}", "model.hidden_sizes=[64,32]"], "layer hidden_0 has shapes"),
        (["--init-from", "{src}", "model.hidden_sizes=[32,32,32]"], "architecture differs"),
        (["--init-from", "{src}", "--freeze", "3"], "--freeze 3: the policy has 2 hidden block"),
        (["--freeze", "1"], "--freeze needs --init-from"),
        (["--keep-normalization"], "--keep-normalization needs --init-from"),
        (["--init-from", "{tmp}/nowhere"], "--init-from {tmp}/nowhere: policy directory not"),
    ],
)
def test_bad_warm_start_is_one_line(run_data, source, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    args = [a.format(src=source, tmp=tmp_path) for a in extra]
    code, _, err = cli(capsys, "train", "--data", str(run_data), "--no-track", "--out", str(out),
                       "model.hidden_sizes=[32,32]", "data.batch_size=128", "training.epochs=1",
                       *args)  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert message.format(tmp=tmp_path) in err, err
    assert not (out / "policy").exists()
