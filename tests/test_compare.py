"""``pipeline compare``: groups of policies on the same seeds, with group means and
intervals, and one-line errors for bad groups."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.cli import main
from pipeline.rollout.scores import mean_of
from pipeline.stages.evaluate import EXPERT, LEARNER, RANDOM, EvaluateRequest, evaluate
from pipeline.training.config import load_config

TINY = ["model.hidden_sizes=[32,32]", "data.batch_size=256", "training.epochs=1"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs(run_data, tmp_path_factory) -> Path:
    """Three run policies (training seeds 0, 1, 2) in runs/bc-s0 ... and a walk policy."""
    from pipeline.stages.record import RecordConfig, record

    root = tmp_path_factory.mktemp("compare")
    for seed in (0, 1, 2):
        train_from_file(
            run_data, load_config(None, [*TINY, f"seed={seed}"]), root / "runs" / f"bc-s{seed}"
        )
    walk = root / "walk.h5"
    record(RecordConfig(out=walk, env_id="sim/HumanoidWalk-v0", episodes=2, seed=0,
                        episode_seconds=0.3, start_phase="0"))  # fmt: skip
    train_from_file(walk, load_config(None, [*TINY, "data.val_fraction=0.5"]), root / "walk-policy")
    return root


def test_groups_share_seeds_and_get_means_with_intervals(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    code, stdout, err = cli(capsys, "compare", "--group", f"bc={runs}/runs/bc-s[01]",
                            "--policy", str(runs / "runs" / "bc-s2"), "--episodes", "2",
                            "--workers", "1", "--no-track", "--out", str(out))  # fmt: skip
    assert code == 0, err
    report = json.loads((out / "compare.json").read_text())
    assert [p["group"] for p in report["policies"]] == ["bc", "bc", str(runs / "runs" / "bc-s2")]
    assert report["seeds"] == [1000, 1001]
    bc = report["groups"]["bc"]
    rows = [p for p in report["policies"] if p["group"] == "bc"]
    assert bc["policies"] == 2
    assert math.isclose(bc["normalized_distance"]["mean"],
                        sum(p["normalized_distance"] for p in rows) / 2)  # fmt: skip
    assert bc["normalized_distance"]["worst"] == min(p["normalized_distance"] for p in rows)
    assert bc["normalized_distance"]["ci95"] is not None  # two policies: an interval
    single = report["groups"][str(runs / "runs" / "bc-s2")]
    assert single["policies"] == 1 and single["normalized_distance"]["ci95"] is None
    assert (out / "compare.png").stat().st_size > 0
    assert "mean of 2" in stdout
    # Each policy's row is what an independent `pipeline evaluate` of it on the same seeds
    # measures, and the expert's and random's rows are theirs.
    for row in report["policies"]:
        alone = evaluate(EvaluateRequest(policy=row["policy"], episodes=2, seed=1000, workers=1,
                                         compare_expert=True), tracking_uri=None)  # fmt: skip
        learner, scores = alone.summaries[LEARNER], alone.scores
        expected = {"survival": learner["survival_rate"],
                    "survival_ci95": list(learner["survival_ci95"]),
                    "survival_on_expert_starts": scores["survival_on_expert_surviving_starts"],
                    "normalized_distance": scores["normalized_distance"],
                    "pose_reward": mean_of(learner, "pose_reward"),
                    "action_error": mean_of(learner, "action_error")}  # fmt: skip
        for key, value in expected.items():
            assert _same(row[key], value), (row["policy"], key, row[key], value)
        for name, summary in ((EXPERT, report["expert"]), (RANDOM, report["random"])):
            assert summary["survival_rate"] == alone.summaries[name]["survival_rate"]
            assert _same(summary["distance"]["mean"], alone.summaries[name]["distance"]["mean"])
    # The policies differ (three training seeds), so equal rows would mean one policy ran.
    assert len({row["action_error"] for row in report["policies"]}) == 3


def _same(saved: object, measured: object) -> bool:
    """A value of compare.json (NaN written as null) against the one measured."""
    if isinstance(measured, list):
        return (
            isinstance(saved, list)
            and len(saved) == len(measured)
            and all(map(_same, saved, measured))
        )
    if saved is None:
        return measured is None or math.isnan(measured)
    return math.isclose(saved, measured, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group", "bc={runs}/runs/none-*"], "matches no policy"),
        (["--group", "bc"], "--group bc: expected NAME=PATTERN"),
        ([], "give at least one policy"),
        (
            ["--group", "bc={runs}/runs/bc-s*", "--policy", "{runs}/walk-policy"],
            "policies for different environments",
        ),
        (["--policy", "{runs}/runs/bc-s0", "--episodes", "0"], "--episodes: must be >= 1"),
        (["--group", "x={runs}/walk.h5"], "is not a policy or run directory"),
        (["--policy", "{runs}/runs/bc-s0", "--push", "-1"], "--push -1: the impulse must be"),
    ],
)
def test_bad_compare_input_is_one_line(runs, capsys, args, message):
    filled = [a.format(runs=runs) for a in args]
    code, _, err = cli(capsys, "compare", "--no-track", *filled)
    assert code == 2 and err.count("\n") == 1, err
    assert message.format(runs=runs) in err, err


def test_tracked_compare_logs_group_metrics(runs, tmp_path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    json_path = tmp_path / "compare.json"
    code, stdout, err = cli(capsys, "compare", "--group", f"bc={runs}/runs/bc-s[01]",
                            "--episodes", "1", "--workers", "1", "--tracking-uri", uri,
                            "--json", str(json_path))  # fmt: skip
    assert code == 0, err
    run_id = stdout.split("mlflow run: ")[1].split()[0]
    metrics = MlflowClient(uri).get_run(run_id).data.metrics
    group = json.loads(json_path.read_text())["groups"]["bc"]
    for key in ("survival", "normalized_distance", "survival_on_expert_starts"):
        if group[key]["mean"] is None:  # NaN: no start the expert survived
            assert math.isnan(metrics[f"compare/bc/{key}"]), key
        else:
            assert metrics[f"compare/bc/{key}"] == pytest.approx(group[key]["mean"]), key


def test_pushed_compare_pushes_every_policy_and_the_expert_alike(runs, tmp_path, capsys):
    """With --push the expert falls where it did not: the same pushes reach it too."""
    base = ["compare", "--policy", str(runs / "runs" / "bc-s0"), "--episodes", "2",
            "--workers", "1", "--no-track"]  # fmt: skip
    reports = {}
    for push in (None, "80@0.5"):
        json_path = tmp_path / f"{push}.json"
        extra = ["--push", push] if push else []
        code, stdout, err = cli(capsys, *base, *extra, "--json", str(json_path))
        assert code == 0, err
        reports[push] = json.loads(json_path.read_text())
    assert reports[None]["push"] is None
    assert reports["80@0.5"]["push"] == {"impulse": 80.0, "time": 0.5}
    assert "pushed: 80 N*s lateral push on the torso at 0.5 s" in stdout
    assert reports[None]["expert"]["survival_rate"] == 1.0
    assert reports["80@0.5"]["expert"]["survival_rate"] == 0.0
