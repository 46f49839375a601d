"""``record``, ``train``, ``evaluate`` and ``dagger`` on the skills beyond the walk, at small
scale through the CLI: the backflip (no distance: ranked by pose reward) and the jump."""

from __future__ import annotations

import json

import pytest

from datasets import open_dataset
from pipeline.cli import main
from pipeline.rollout.closed_loop_judge import score_key

TINY = ["training.epochs=2", "model.hidden_sizes=[32,32]", "data.batch_size=256"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("env_id", ["sim/HumanoidBackflip-v0", "sim/HumanoidJump-v0"])
def test_record_train_evaluate_dagger(env_id, tmp_path, capsys):
    data = tmp_path / "demos.h5"
    code, out, err = cli(capsys, "record", "--env", env_id, "--episodes", "2",
                         "--episode-seconds", "1", "--out", str(data))  # fmt: skip
    assert code == 0, err
    with open_dataset(data) as ds:
        assert ds.metadata.env_id == env_id and len(ds.episode_ids()) == 2
        assert ds.sessions[-1]["recording_args"]["episode_seconds"] == 1.0

    out_dir = tmp_path / "bc"
    code, out, err = cli(capsys, "train", "--data", str(data), "--out", str(out_dir),
                         "--no-track", *TINY)  # fmt: skip
    assert code == 0, err
    report = tmp_path / "eval.json"
    code, out, err = cli(capsys, "evaluate", "--policy", str(out_dir / "policy"),
                         "--episodes", "2", "--episode-seconds", "1", "--compare-expert",
                         "--no-track", "--json", str(report))  # fmt: skip
    assert code == 0, err
    result = json.loads(report.read_text())
    assert result["env_id"] == env_id and result["env_kwargs"]["start_phase"] == "random"
    travels = env_id.endswith("Jump-v0")
    for who in ("learner", "expert", "random"):
        assert ("distance" in result["summary"][who]) == travels
        assert "pose_reward" in result["summary"][who]
    assert ("distance" in out) == travels and "pose reward" in out

    if travels:
        return  # the jump shares every code path below with the backflip
    dagger_dir = tmp_path / "dagger"
    code, out, err = cli(capsys, "dagger", "--env", env_id, "--init-data", str(data),
                         "--out", str(dagger_dir), "--iterations", "1",
                         "--episodes-per-iteration", "1", "--episode-seconds", "1",
                         "--eval-episodes", "1", "--workers", "1", "--no-track",
                         "--config", str(out_dir / "config.yaml"))  # fmt: skip
    assert code == 0, err
    with open_dataset(dagger_dir / "aggregate.h5") as ds:
        assert ds.metadata.env_id == env_id and len(ds.episode_ids()) == 3


def test_a_skill_without_distance_is_ranked_by_pose_reward():
    nan = float("nan")
    better = {"survival": 0.5, "normalized_distance": nan, "normalized_pose_reward": 0.8}
    worse = {"survival": 0.5, "normalized_distance": nan, "normalized_pose_reward": 0.3}
    assert score_key(better) > score_key(worse)
    # Survival still comes first, and distance where there is one.
    assert score_key({**worse, "survival": 0.6}) > score_key(better)
    walk = {"survival": 0.5, "normalized_distance": 0.2, "normalized_pose_reward": 0.9}
    assert score_key(walk) == (0.5, 0.2)


def test_mirror_augmentation_on_an_asymmetric_skill_is_one_line(tmp_path, capsys):
    data = tmp_path / "demos.h5"
    assert cli(capsys, "record", "--env", "sim/HumanoidBackflip-v0", "--episodes", "2",
               "--episode-seconds", "0.5", "--out", str(data))[0] == 0  # fmt: skip
    code, _, err = cli(capsys, "train", "--data", str(data), "--out", str(tmp_path / "p"),
                         "--no-track", *TINY, "data.augment.mirror_prob=0.5")  # fmt: skip
    assert code == 2
    assert "data.augment.mirror_prob" in err and "not its own mirror image" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_envs_lists_every_environment_with_its_expert_and_episode(tmp_path, capsys):
    import sim

    report = tmp_path / "envs.json"
    code, out, err = cli(capsys, "envs", "--json", str(report))
    assert code == 0, err
    rows = {r["env_id"]: r for r in json.loads(report.read_text())["environments"]}
    assert list(rows) == list(sim.ENV_IDS) and len(rows) == 4
    assert rows["sim/HumanoidBackflip-v0"]["expert"] == "humanoid_backflip"
    assert rows["sim/HumanoidJump-v0"]["episode"] == "10 s"
    assert rows["sim/HumanoidRun-v0"]["episode"] == "1000 steps"
    assert "humanoid_jump" in out


def _learned(model) -> dict[str, list]:
    return {layer.name: layer.get_weights() for layer in model.layers
            if layer.weights and layer.name not in ("obs_norm", "action")}  # fmt: skip


def test_a_walk_policy_transfers_to_the_backflip_as_a_feature_extractor(tmp_path, capsys):
    import numpy as np

    from models import load_policy

    walk, backflip = tmp_path / "walk.h5", tmp_path / "backflip.h5"
    for env_id, path in (("sim/HumanoidWalk-v0", walk), ("sim/HumanoidBackflip-v0", backflip)):
        assert cli(capsys, "record", "--env", env_id, "--episodes", "2",
                   "--episode-seconds", "0.5", "--out", str(path))[0] == 0  # fmt: skip
    source = tmp_path / "walk-policy"
    assert cli(capsys, "train", "--data", str(walk), "--out", str(source), "--no-track",
               *TINY)[0] == 0  # fmt: skip
    out = tmp_path / "backflip-policy"
    code, _, err = cli(capsys, "train", "--data", str(backflip), "--out", str(out), "--no-track",
                       "--init-from", str(source), "--freeze", "2", *TINY)  # fmt: skip
    assert code == 0, err
    after = _learned(load_policy(out / "policy").model)
    before = _learned(load_policy(source / "policy").model)
    for name in ("hidden_0", "hidden_1"):  # both hidden blocks: the walk's features
        for mine, original in zip(after[name], before[name], strict=True):
            np.testing.assert_array_equal(mine, original)
    assert not np.array_equal(after["action_normalized"][0], before["action_normalized"][0])
    assert load_policy(out / "policy").spec.env_id == "sim/HumanoidBackflip-v0"


def test_init_from_a_policy_of_another_observation_size_is_one_line(run_data, tmp_path, capsys):
    source = tmp_path / "run-policy"
    assert cli(capsys, "train", "--data", str(run_data), "--out", str(source), "--no-track",
               *TINY)[0] == 0  # fmt: skip
    backflip = tmp_path / "backflip.h5"
    assert cli(capsys, "record", "--env", "sim/HumanoidBackflip-v0", "--episodes", "2",
               "--episode-seconds", "0.5", "--out", str(backflip))[0] == 0  # fmt: skip
    out = tmp_path / "bad"
    code, _, err = cli(capsys, "train", "--data", str(backflip), "--out", str(out), "--no-track",
                       "--init-from", str(source), *TINY)  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert f"--init-from {source}: the source policy maps observations (44,)" in err
    assert "this data has (197,)" in err
    assert not (out / "policy").exists()
