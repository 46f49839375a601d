"""``pipeline finetune`` end to end at small scale: outputs, MLflow, a resume after a kill
that continues bit-identically, and one clear line for every bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from finetune_small import SMALL, WALK, tiny_walk_policy

from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.algorithms.finetune import (
    CHECKPOINT_FILE,
    FINETUNE_FILE,
    REQUEST_FILE,
    FinetuneRequest,
    finetune,
)
from pipeline.algorithms.finetune_config import resolve_finetune_config
from pipeline.cli import main
from pipeline.training.config import load_config

TIMING = ("wall_s", "steps_per_s", "rollout_steps_per_s", "bare_steps_per_s")


@pytest.fixture(scope="module")
def walk_policy(tmp_path_factory) -> Path:
    return tiny_walk_policy(tmp_path_factory.mktemp("finetune-policy"))


def _request(policy: Path, out: Path, *extra: str, resume: bool = False) -> FinetuneRequest:
    config = resolve_finetune_config(None, [*SMALL, *extra], env_id=WALK)
    return FinetuneRequest(policy=str(policy), out=out, config=config, resume=resume)


def _checkpoint(out: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(out / CHECKPOINT_FILE) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    for row in meta["rows"]:
        for key in TIMING:
            row.pop(key)
    return arrays, meta


@pytest.fixture(scope="module")
def uninterrupted(walk_policy, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "ft"
    finetune(_request(walk_policy, out))
    return out


def test_a_run_publishes_a_policy_the_pipeline_accepts(uninterrupted, capsys):
    """Six updates, the first warming up the critic; selections after policy updates 2 and
    4 and after the last; ``DIR/policy`` is the best of them (or the start) and
    ``pipeline evaluate`` rolls it out."""
    result = json.loads((uninterrupted / FINETUNE_FILE).read_text())
    assert [r["phase"] for r in result["rows"]] == ["warmup"] + ["ppo"] * 5
    assert result["env_steps"] == 1536
    assert [s["update"] for s in result["selections"]] == [-1, 3, 5, 6]
    published = [s for s in result["selections"] if s["published"]]
    assert published[0]["update"] == -1  # the starting policy is the first candidate
    assert all(np.isfinite(r["value_loss"]) for r in result["rows"])
    assert all(np.isfinite(r["approx_kl"]) for r in result["rows"][1:])
    assert (uninterrupted / "finetune_curve.png").stat().st_size > 1000
    code = main(
        [
            "evaluate",
            "--policy",
            str(uninterrupted / "policy"),
            "--episodes",
            "1",
            "--episode-seconds",
            "0.5",
            "--no-track",
        ]
    )
    assert code == 0, capsys.readouterr().err


def test_the_expert_labels_are_timed_apart_from_the_rollout(uninterrupted):
    """Each update's speed: with the anchor's expert labels, without them (the rollout),
    and the simulator alone, slowest first."""
    rows = json.loads((uninterrupted / FINETUNE_FILE).read_text())["rows"]
    for row in rows:
        assert row["steps_per_s"] < row["rollout_steps_per_s"] < row["bare_steps_per_s"]


def test_the_policy_moves_and_the_warmup_does_not_move_it(uninterrupted, walk_policy):
    """The warm-up leaves the policy as it was; PPO then changes its weights."""
    from models import load_policy

    start = load_policy(walk_policy).model.get_weights()
    arrays, meta = _checkpoint(uninterrupted)
    final = [arrays[k] for k in sorted(arrays) if k.startswith("policy/")]
    assert any(not np.array_equal(a, b) for a, b in zip(start, final, strict=True))
    assert meta["rows"][0]["anchor_weight"] == 0.0
    assert meta["rows"][1]["anchor_weight"] == 1.0
    assert meta["rows"][2]["anchor_weight"] == pytest.approx(0.98)


def test_a_killed_run_resumes_to_the_uninterrupted_result(walk_policy, uninterrupted, tmp_path):
    """SIGKILL the command once it has checkpointed its third update, ``--resume``: the
    checkpoint (both networks, optimizers, log-std, rows) equals the uninterrupted run's."""
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "finetune",
        "--policy",
        str(walk_policy),
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-track",
        *SMALL,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if (out / CHECKPOINT_FILE).exists() and _checkpoint(out)[1]["update"] >= 3:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    assert _checkpoint(out)[1]["update"] < 6
    finetune(_request(walk_policy, out, resume=True))
    arrays, meta = _checkpoint(out)
    reference_arrays, reference_meta = _checkpoint(uninterrupted)
    assert meta["rows"] == reference_meta["rows"]
    assert meta["selections"] == reference_meta["selections"]
    assert arrays.keys() == reference_arrays.keys()
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], reference_arrays[key], err_msg=key)


def test_mlflow_gets_per_update_metrics_selections_and_the_model(walk_policy, tmp_path, capsys):
    """One run: a metric per update, the selection scores, the curve and the policy as an
    MLflow model that ``pipeline evaluate runs:/...`` accepts; ``--json`` has the rows."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "tracked"
    code = main(
        [
            "finetune",
            "--policy",
            str(walk_policy),
            "--out",
            str(out),
            "--workers",
            "1",
            "--tracking-uri",
            uri,
            "--json",
            str(tmp_path / "finetune.json"),
            *SMALL,
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    run_id = printed.out.split("mlflow run: ")[1].split()[0]
    report = json.loads((tmp_path / "finetune.json").read_text())
    assert report["run_id"] == run_id and report["env_steps"] == 1536
    assert len(report["rows"]) == 6 and report["selections"][0]["update"] == -1
    client = mlflow.MlflowClient(uri)
    history = client.get_metric_history(run_id, "train/value_loss")
    assert [m.step for m in history] == [256 * k for k in range(1, 7)]
    assert len(client.get_metric_history(run_id, "select/survival")) == 4
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"plots", FINETUNE_FILE} <= artifacts
    code = main(
        [
            "evaluate",
            "--policy",
            f"runs:/{run_id}/policy",
            "--episodes",
            "1",
            "--episode-seconds",
            "0.5",
            "--tracking-uri",
            uri,
        ]
    )
    assert code == 0, capsys.readouterr().err


# -- bad input -------------------------------------------------------------------------


def _refused(capsys, policy: Path, out: Path, *extra: str) -> str:
    """``pipeline finetune --policy POLICY --out OUT --no-track EXTRA...`` is refused in one
    line (exit 2, no traceback); returns the line."""
    code = main(["finetune", "--policy", str(policy), "--out", str(out), "--no-track", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture()
def camera_policy(walk_policy, tmp_path) -> Path:
    """The walk policy whose spec says it sees camera frames."""
    copy = tmp_path / "camera-policy"
    shutil.copytree(walk_policy, copy)
    spec = json.loads((copy / "spec.json").read_text())
    spec.update(inputs="image+state", camera={"width": 16, "height": 16, "view": "follow"})
    (copy / "spec.json").write_text(json.dumps(spec))
    return copy


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--env", "sim/HumanoidRun-v0"], "trained on sim/HumanoidWalk-v0, not sim/HumanoidRun-v0"),
        (["--steps", "0"], "steps"),
        (["--workers", "0"], "--workers: must be >= 1"),
        (["--eval-episodes", "0"], "selection.episodes"),
        (["anchor.weight=-1"], "anchor.weight"),
        (["--resume"], "no fine-tuning run to resume"),
        (["--backend", "ray", "--ray-address", "127.0.0.1:1"], "--ray-address"),
    ],
)
def test_bad_options_are_refused_in_one_line(walk_policy, tmp_path, capsys, args, expected):
    out = tmp_path / "out"
    assert expected in _refused(capsys, walk_policy, out, *args)
    assert not out.exists()


def test_a_camera_policy_is_refused(camera_policy, tmp_path, capsys):
    assert "a camera policy" in _refused(capsys, camera_policy, tmp_path / "out")


def test_an_anchor_file_of_another_env_is_refused(walk_policy, run_data, tmp_path, capsys):
    err = _refused(capsys, walk_policy, tmp_path / "out", "--anchor-data", str(run_data))
    assert "recorded in sim/HumanoidRun-v0" in err


def test_an_existing_out_is_not_touched_and_a_resume_must_repeat_the_arguments(
    uninterrupted, walk_policy, capsys
):
    """Without --resume an existing run is refused; with --resume and another seed the
    first difference is named; nothing in the run changes."""
    before = {p: p.stat().st_mtime_ns for p in uninterrupted.rglob("*")}
    assert "already exists" in _refused(capsys, walk_policy, uninterrupted, *SMALL)
    err = _refused(capsys, walk_policy, uninterrupted, "--resume", "--seed", "1", *SMALL)
    assert "config.seed: 0 there, 1 now" in err
    assert {p: p.stat().st_mtime_ns for p in uninterrupted.rglob("*")} == before


def test_the_walk_runs_on_its_measured_recipe():
    """The walk's defaults carry its recipe's anchor and pose floors and pushes; other envs
    do not, and an override still wins."""
    walk = resolve_finetune_config(None, [], env_id=WALK)
    assert (walk.anchor.min_weight, walk.selection.min_pose_reward) == (0.4, 0.95)
    assert (walk.curriculum.push_probability, walk.curriculum.push_impulse) == (0.5, (0, 20))
    run = resolve_finetune_config(None, [], env_id="sim/HumanoidRun-v0")
    assert (run.anchor.min_weight, run.selection.min_pose_reward) == (0.0, None)
    assert run.curriculum.push_probability == 0
    overridden = resolve_finetune_config(None, ["anchor.min_weight=0"], env_id=WALK)
    assert overridden.anchor.min_weight == 0


def test_a_resume_with_more_steps_extends_the_run(uninterrupted, walk_policy, tmp_path, capsys):
    """``--resume`` with a larger ``--steps`` goes on from the finished run: its updates and
    selections stay, new ones follow (the old last update keeps its selection), the request
    records the new budget. Fewer steps than the run had are refused."""
    out = tmp_path / "ft"
    shutil.copytree(uninterrupted, out)
    err = _refused(capsys, walk_policy, out, "--resume", *SMALL, "steps=1024")
    assert "config.steps: 1536 there, 1024 now" in err
    result = finetune(_request(walk_policy, out, "steps=2048", resume=True))
    assert result.env_steps == 2048
    before = json.loads((uninterrupted / FINETUNE_FILE).read_text())
    after = json.loads((out / FINETUNE_FILE).read_text())
    assert after["rows"][:6] == before["rows"] and len(after["rows"]) == 8
    assert [s["update"] for s in after["selections"]] == [-1, 3, 5, 6, 7, 8]
    recorded = json.loads((out / REQUEST_FILE).read_text())
    assert recorded["config"]["steps"] == 2048


def test_the_run_fine_tunes_on_its_own_reward(run_data, tmp_path):
    """HumanoidRun (no clip, no pose reward, its own reward and start noise) goes through
    the same loop: returns are the run's, selections rank by distance."""
    train_from_file(
        run_data,
        load_config(None, ["model.hidden_sizes=[16,16]", "training.epochs=1"]),
        tmp_path / "run-bc",
        tracking_uri=None,
    )
    config = resolve_finetune_config(
        None, [*SMALL, "curriculum.episode_seconds=0.5"], env_id="sim/HumanoidRun-v0"
    )
    out = tmp_path / "run-ft"
    result = finetune(FinetuneRequest(policy=str(tmp_path / "run-bc"), out=out, config=config))
    assert result.env_id == "sim/HumanoidRun-v0"
    assert all(np.isfinite(r.mean_return) for r in result.rows)
    assert all(np.isnan(r.pose_reward) for r in result.rows)  # the run has no clip
    assert all(np.isfinite(s.normalized_distance) for s in result.selections)
    assert (out / "policy" / "spec.json").is_file()


def test_from_scratch_starts_from_the_initial_weights_of_the_same_architecture(walk_policy):
    """The ablation's Gaussian is built around a fresh copy of the network (new layers from
    the same configs: the initializers' own seeds, the same normalization), not around the
    trained weights."""
    import keras

    from models import load_policy
    from pipeline.algorithms.finetune import _build_learner
    from pipeline.training.runtime import seeded_runtime

    loaded = load_policy(walk_policy)
    trained = [w.copy() for w in loaded.model.get_weights()]
    config = resolve_finetune_config(None, ["from_scratch=true"], env_id=WALK)
    with seeded_runtime(config.seed):
        learner = _build_learner(loaded, config)
        fresh = keras.models.clone_model(loaded.model).get_weights()
    started = learner.policy.mean_model.get_weights()
    assert learner.policy.mean_model is not loaded.model
    for a, b in zip(started, fresh, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(started, trained, strict=True))
    assert loaded.model.get_weights()[0].tolist() == trained[0].tolist()  # left untouched


def test_the_anchor_weight_stops_at_its_floor(walk_policy, tmp_path):
    result = finetune(_request(walk_policy, tmp_path / "floor", "anchor.decay=0.5",
                               "anchor.min_weight=0.3"))  # fmt: skip
    assert [r.anchor_weight for r in result.rows if r.phase == "ppo"] == [1.0, 0.5, 0.3, 0.3, 0.3]


def test_a_candidate_below_the_pose_floor_is_not_published():
    """It would rank first (survival), but keeps only 0.90 of the expert's pose reward
    against a floor of 0.95; the floor does not apply to the starting policy, nor to a
    task without a pose reward (NaN)."""
    from pipeline.algorithms.finetune import SelectionRow, publishes

    best = SelectionRow(update=-1, env_steps=0, survival=0.7, normalized_distance=1.0,
                        normalized_pose_reward=1.0, distance=10.0, published=True)  # fmt: skip
    better = {"survival": 0.9, "normalized_distance": 1.2, "normalized_pose_reward": 0.90}
    assert publishes(better, best, 10, None)
    assert not publishes(better, best, 10, 0.95)
    assert publishes({**better, "normalized_pose_reward": 0.96}, best, 10, 0.95)
    assert publishes({**better, "normalized_pose_reward": math.nan}, best, 10, 0.95)
    assert publishes(better, None, -1, 0.95)
    worse = {"survival": 0.6, "normalized_distance": 2.0, "normalized_pose_reward": 1.0}
    assert not publishes(worse, best, 10, 0.95)


def test_without_an_anchor_no_anchor_loss_is_reported(walk_policy, tmp_path):
    result = finetune(_request(walk_policy, tmp_path / "free", "anchor.source=none", "steps=512"))
    ppo_rows = [r for r in result.rows if r.phase == "ppo"]
    assert ppo_rows and all(math.isnan(r.anchor_loss) and r.anchor_weight == 0 for r in ppo_rows)
