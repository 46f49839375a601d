"""``pipeline evaluate``: a real trained policy rolled out in the real simulation, compared
with the expert and a random policy, tracked in MLflow, and refused on bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v2 as imageio
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.cli import main
from pipeline.rollout.episodes import EpisodeResult, run_episode, summarize, wilson_interval
from pipeline.rollout.filming import first_fall_path
from pipeline.rollout.policies import ExpertPolicy, ExpertRelabeller, LearnedPolicy
from pipeline.rollout.policy_source import MANIFEST_FILE, SPEC_FILE
from pipeline.stages.evaluate import (
    EXPERT,
    LEARNER,
    RANDOM,
    EvaluateRequest,
    evaluate,
    expert_normalized_scores,
    normalized,
    side_by_side_path,
)
from pipeline.training.config import load_config

RUN = "sim/HumanoidRun-v0"


@pytest.fixture(scope="session")
def tracked_store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('eval-mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def trained(run_data, tmp_path_factory, tracked_store) -> Path:
    """A small MLP trained on four run demonstrations, tracked in its own SQLite store."""
    out = tmp_path_factory.mktemp("eval-train") / "run"
    config = load_config(None, ["model.hidden_sizes=[32,32]", "training.epochs=2"])
    train_from_file(run_data, config, out, tracking_uri=tracked_store)
    return out


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_compare_expert_end_to_end(trained, tracked_store, tmp_path, capsys):
    video, report_dir, json_path = tmp_path / "eval.mp4", tmp_path / "report", tmp_path / "e.json"
    code, out, err = cli(
        capsys, "evaluate", "--policy", str(trained), "--episodes", "2", "--workers", "1",
        "--compare-expert", "--video", str(video), "--out", str(report_dir), "--json",
        str(json_path), "--tracking-uri", tracked_store,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(json_path.read_text())
    assert report == json.loads((report_dir / "evaluation.json").read_text())
    assert set(report["episodes"]) == {LEARNER, EXPERT, RANDOM}
    assert report["seeds"] == [1000, 1001]
    for episodes in report["episodes"].values():
        assert [e["seed"] for e in episodes] == [1000, 1001]
    learner = report["summary"][LEARNER]
    for name, summary in report["summary"].items():  # the summary is its episodes'
        episodes = report["episodes"][name]
        assert summary["survival_rate"] == 1 - sum(e["fell"] for e in episodes) / 2
        assert summary["distance"]["mean"] == pytest.approx(
            sum(e["distance"] for e in episodes) / 2)  # fmt: skip
    assert learner["action_error"]["mean"] > 0 and learner["action_error_by_second"]
    # The expert's own actions are its relabels: no action error is measured for it.
    assert "action_error" not in report["summary"][EXPERT]
    scores = report["scores"]
    expected = normalized(
        *(report["summary"][k]["distance"]["mean"] for k in (LEARNER, EXPERT, RANDOM))
    )
    assert scores["normalized_distance"] == pytest.approx(expected)
    assert "expert-normalized score" in out
    starts = sum(not e["fell"] for e in report["episodes"][EXPERT])
    assert scores["expert_surviving_starts"] == starts
    assert f"survival on the {starts} starts the expert survives: " in out
    # Videos: the learner, and learner | expert side by side on the same seed; the
    # learner's first fall when it fell.
    fell = any(e["fell"] for e in report["episodes"][LEARNER])
    assert report["videos"] == [str(video), str(side_by_side_path(video))] + (
        [str(first_fall_path(video))] if fell else []
    )
    single = imageio.get_reader(video).get_data(0)
    joint = imageio.get_reader(side_by_side_path(video)).get_data(0)
    assert joint.shape[1] == 2 * single.shape[1] + 4 and joint.shape[0] == single.shape[0]
    assert {Path(p).name for p in report["plots"]} == {
        "episodes.png", "action_error.png", "trajectories.png"}  # fmt: skip
    assert all(Path(p).stat().st_size > 1000 for p in report["plots"])
    # MLflow: an evaluation run nested under the training run, metrics and artifacts.
    client = MlflowClient(tracked_store)
    run = client.get_run(report["eval_run_id"])
    training_run = json.loads((trained / "training_run.json").read_text())["run_id"]
    assert run.data.tags["mlflow.parentRunId"] == training_run
    assert run.data.tags["training_run_id"] == training_run
    # The run's metrics are the report's numbers, policy by policy.
    metrics = run.data.metrics
    assert metrics["eval/survival_rate"] == learner["survival_rate"]
    assert metrics["eval/normalized_distance"] == pytest.approx(scores["normalized_distance"])
    assert metrics["eval/distance"] == pytest.approx(learner["distance"]["mean"])
    assert metrics["eval/action_error"] == pytest.approx(learner["action_error"]["mean"])
    for name in (EXPERT, RANDOM):
        summary = report["summary"][name]
        assert metrics[f"eval/{name}/survival_rate"] == summary["survival_rate"]
        assert metrics[f"eval/{name}/return"] == pytest.approx(summary["return"]["mean"])
    names = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert names == {"plots/episodes.png", "plots/action_error.png", "plots/trajectories.png"}
    assert len(client.list_artifacts(run.info.run_id, "videos")) == len(report["videos"])


def test_results_do_not_depend_on_the_number_of_workers(trained):
    def run(workers: int) -> list[dict]:
        request = EvaluateRequest(policy=str(trained), episodes=2, workers=workers)
        report = evaluate(request, tracking_uri=None)
        return [r.to_dict() | {"wall_s": 0} for r in report.results[LEARNER]]

    assert run(1) == run(2)


def test_run_episodes_end_at_episode_seconds(trained, capsys, tmp_path):
    # 0.2 s of 0.0165-s steps is 12 steps; the learner, the expert and random share it.
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, "evaluate", "--policy", str(trained), "--episodes", "2",
                       "--workers", "1", "--episode-seconds", "0.2", "--compare-expert",
                       "--json", str(out), "--no-track")  # fmt: skip
    assert code == 0, err
    episodes = json.loads(out.read_text())["episodes"]
    for name in ("learner", "expert"):
        assert [e["steps"] for e in episodes[name]] == [12, 12]
    assert all(e["steps"] <= 12 for e in episodes["random"])


@pytest.mark.parametrize("kind", ["runs", "models"])
def test_mlflow_uris_resolve_to_the_same_policy(trained, tracked_store, kind):
    record = json.loads((trained / "training_run.json").read_text())
    uri = f"runs:/{record['run_id']}/policy" if kind == "runs" else record["model_uri"]
    reports = [
        evaluate(EvaluateRequest(policy=p, episodes=1, workers=1), None, lookup_uri=tracked_store)
        for p in (str(trained / "policy"), uri)
    ]
    assert reports[1].training_run_id == record["run_id"]
    assert reports[1].validation_loss == pytest.approx(record["best_val_loss"])
    a, b = (r.results[LEARNER][0] for r in reports)
    assert (a.steps, a.distance, a.ret) == (b.steps, b.distance, b.ret)


def test_registered_model_version_resolves(trained, tracked_store, tmp_path, capsys):
    record = json.loads((trained / "training_run.json").read_text())
    mlflow.set_tracking_uri(tracked_store)
    version = mlflow.register_model(record["model_uri"], "eval-test-policy").version
    policy = f"models:/eval-test-policy/{version}"
    json_path = tmp_path / "registered.json"
    code, _, err = cli(capsys, "evaluate", "--policy", policy, "--episodes", "1",
                       "--workers", "1", "--tracking-uri", tracked_store, "--json",
                         str(json_path))  # fmt: skip
    assert code == 0, err
    # The registered version is the trained policy: the same episode as the local one.
    (registered,) = json.loads(json_path.read_text())["episodes"][LEARNER]
    local = evaluate(EvaluateRequest(policy=str(trained), episodes=1, workers=1), None)
    expected = local.results[LEARNER][0].to_dict()
    for key in ("seed", "steps", "fell", "distance", "return"):
        assert registered[key] == expected[key], key


# --- pieces ---------------------------------------------------------------------------


def test_the_expert_relabelling_itself_has_zero_action_error():
    import gymnasium as gym

    import sim

    env = gym.make(RUN)
    expert = sim.load_expert(sim.EXPERT_FOR_ENV[RUN])
    relabel = ExpertRelabeller(expert, np.ones(17))
    result = run_episode(env, ExpertPolicy(expert), seed=3, relabel=relabel, trace=True)
    env.close()
    # Actions are cast to float32 before being scored: the error is rounding only.
    assert result.action_error < 1e-12
    assert result.actions.shape == (result.steps, 17)
    assert len(result.action_error_by_second) == math.ceil(result.survived_s - 1e-9)


def test_learned_policy_pads_its_history_with_the_first_observation():
    seen = []

    def forward(x):
        seen.append(x[0, :, 0].tolist())
        return np.zeros((1, 2), np.float32)

    policy = LearnedPolicy(forward, history=3)
    policy.reset(0)
    for value in (1.0, 2.0, 3.0, 4.0):
        policy.act(np.full(5, value))
    policy.reset(1)
    policy.act(np.full(5, 9.0))
    assert seen == [[1, 1, 1], [1, 1, 2], [1, 2, 3], [2, 3, 4], [9, 9, 9]]


def _result(seed: int, fell: bool, distance: float, ret: float) -> EpisodeResult:
    return EpisodeResult(seed=seed, steps=10, survived_s=1.0, fell=fell, distance=distance,
                         ret=ret, pose_reward=None, wall_s=0.1)  # fmt: skip


def test_expert_normalized_scores_and_survival_on_the_experts_starts():
    results = {
        LEARNER: [_result(0, False, 5, 50), _result(1, True, 1, 10), _result(2, False, 3, 30)],
        EXPERT: [_result(0, False, 10, 100), _result(1, False, 10, 100), _result(2, True, 2, 20)],
        RANDOM: [_result(0, True, 0, 0), _result(1, True, 0, 0), _result(2, True, 0, 0)],
    }
    scores = expert_normalized_scores(results)
    assert scores["normalized_distance"] == pytest.approx(3.0 / (22 / 3))
    assert scores["normalized_return"] == pytest.approx(30.0 / (220 / 3))
    # The expert survives seeds 0 and 1; the learner survives 0 of those two.
    assert scores["expert_surviving_starts"] == 2
    assert scores["survival_on_expert_surviving_starts"] == 0.5
    assert summarize(results[LEARNER])["survival_rate"] == pytest.approx(2 / 3)


def test_wilson_interval():
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    low, high = wilson_interval(30, 40)
    assert low < 0.75 < high and high - low == pytest.approx(0.262, abs=0.01)


def test_manifest_name_matches_the_saving_module():
    from models import saving

    assert saving.MANIFEST_FILE == MANIFEST_FILE
    assert saving.SPEC_FILE == SPEC_FILE


# --- bad input ------------------------------------------------------------------------


def _one_line_error(capsys, *args: str) -> str:
    code, _, err = cli(capsys, "evaluate", *args)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    return lines[0]


def test_bad_policy_paths(tmp_path, capsys):
    assert "not found" in _one_line_error(capsys, "--policy", str(tmp_path / "nope"), "--no-track")
    (tmp_path / "empty").mkdir()
    message = _one_line_error(capsys, "--policy", str(tmp_path / "empty"), "--no-track")
    assert "not a policy directory" in message


def test_unsafe_policy_is_refused(tmp_path, capsys):
    import keras

    from models import save_policy
    from models.spec import PolicySpec

    spec = PolicySpec.from_zscore(env_id=RUN, obs_mean=np.zeros(44), obs_variance=np.ones(44),
                                  act_mean=np.zeros(17), act_variance=np.ones(17))  # fmt: skip
    obs = keras.Input(shape=(44,))
    hidden = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(obs)
    save_policy(tmp_path / "p", keras.Model(obs, keras.layers.Dense(17)(hidden)), spec, {})
    assert "safe_mode" in _one_line_error(capsys, "--policy", str(tmp_path / "p"), "--no-track")


def test_spec_mismatch_is_refused(trained, capsys):
    message = _one_line_error(capsys, "--policy", str(trained), "--env", "sim/HumanoidWalk-v0",
                              "--no-track")  # fmt: skip
    assert "trained on sim/HumanoidRun-v0" in message and "observation 197" in message


@pytest.mark.parametrize(
    "args, words",
    [
        (["--episodes", "0"], "--episodes"),
        (["--workers", "0"], "--workers"),
        (["--video", "/dev/null/v.mp4"], "--video"),
        (["--video", "v.avi"], "--video"),
        (["--start-phase", "2"], "--start-phase"),
        (["--env", "sim/Nope-v0"], "--env"),
    ],
)
def test_bad_options(trained, capsys, args, words):
    assert words in _one_line_error(capsys, "--policy", str(trained), "--no-track", *args)


@pytest.mark.parametrize("uri", ["runs:/0123456789abcdef/policy", "models:/no-such-model/1"])
def test_unresolvable_mlflow_uris(tracked_store, capsys, uri):
    message = _one_line_error(capsys, "--policy", uri, "--tracking-uri", tracked_store)
    assert uri in message and "cannot resolve" in message


def test_out_that_is_a_file_is_refused(trained, tmp_path, capsys):
    (tmp_path / "f").write_text("keep")
    message = _one_line_error(capsys, "--policy", str(trained), "--no-track", "--out",
                              str(tmp_path / "f"))  # fmt: skip
    assert "not a directory" in message and (tmp_path / "f").read_text() == "keep"


def test_existing_report_is_not_overwritten(trained, tmp_path, capsys):
    (tmp_path / "evaluation.json").write_text("{}")
    message = _one_line_error(capsys, "--policy", str(trained), "--no-track", "--out",
                              str(tmp_path))  # fmt: skip
    assert "already holds" in message
    assert (tmp_path / "evaluation.json").read_text() == "{}"


def test_existing_outputs_are_replaced_only_with_overwrite(trained, tmp_path, capsys):
    report, video, out = tmp_path / "e.json", tmp_path / "v.gif", tmp_path / "out"
    out.mkdir()
    for path in (report, video, out / "evaluation.json"):
        path.write_bytes(b"old")
    args = ["--policy", str(trained), "--no-track", "--episodes", "1", "--workers", "1",
            "--json", str(report), "--video", str(video), "--out", str(out)]  # fmt: skip
    assert "(use --overwrite)" in _one_line_error(capsys, *args)
    assert all(p.read_bytes() == b"old" for p in (report, video, out / "evaluation.json"))
    code, _, err = cli(capsys, "evaluate", *args, "--overwrite")
    assert code == 0, err
    for path in (report, out / "evaluation.json"):
        assert json.loads(path.read_text())["command"] == "evaluate"
    assert video.read_bytes()[:3] == b"GIF"


def test_a_tensorflow_fallback_policy_travels_to_workers_by_its_directory(tmp_path):
    import pickle

    import keras

    from models import save_policy
    from models.inference import KerasForward
    from models.spec import PolicySpec

    spec = PolicySpec.from_zscore(env_id=RUN, obs_mean=np.zeros(4), obs_variance=np.ones(4),
                                  act_mean=np.zeros(2), act_variance=np.ones(2))  # fmt: skip
    obs = keras.Input(shape=(4,))
    hidden = keras.layers.UnitNormalization()(keras.layers.Dense(3)(obs))  # no NumPy op
    model = keras.Model(obs, keras.layers.Dense(2)(hidden))
    save_policy(tmp_path / "p", model, spec, {})
    policy = LearnedPolicy(KerasForward(model), history=1, directory=str(tmp_path / "p"))
    clone = pickle.loads(pickle.dumps(policy))
    assert clone.forward is None  # rebuilt from the directory on first use
    x = np.linspace(-1, 1, 4)
    np.testing.assert_allclose(clone.act(x), policy.act(x), rtol=1e-6)
    with pytest.raises(TypeError, match="directory"):
        pickle.dumps(LearnedPolicy(KerasForward(model), history=1))


def test_side_by_side_holds_the_shorter_video_and_labels_both(tmp_path):
    from pipeline.rollout.video import VideoWriter, side_by_side

    for name, count, shade in (("a.mp4", 5, 40), ("b.mp4", 9, 200)):
        with VideoWriter(tmp_path / name, fps=10) as writer:
            for _ in range(count):
                writer.append(np.full((48, 64, 3), shade, dtype=np.uint8))
    frames = side_by_side(tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "ab.mp4", 10,
                          labels=("learner", "expert"))  # fmt: skip
    assert frames == 9
    last = imageio.get_reader(tmp_path / "ab.mp4").get_data(8)
    assert last.shape == (48, 2 * 64 + 4, 3)
    assert abs(int(last[40, 10].mean()) - 40) < 12  # the short one holds its last frame
    assert abs(int(last[40, 100].mean()) - 200) < 12
    assert last[2:14, 4:50].std() > 20  # a label was drawn on the left half


def test_a_temporal_policy_sees_the_windows_it_was_trained_on(run_data, tmp_path):
    """Closed loop with a cnn1d (history 4): every action equals the Keras model applied
    to the training-style window of the observations the rollout produced."""
    import gymnasium as gym

    from datasets.training.windows import history_windows
    from models import load_policy
    from pipeline.rollout.policy_source import resolve_policy_source
    from pipeline.stages.evaluate import learner_policy

    config = load_config(None, ["model.name=cnn1d", "model.filters=[8]", "model.head_sizes=[16]",
                                "data.history=4", "training.epochs=1"])  # fmt: skip
    train_from_file(run_data, config, tmp_path / "cnn", tracking_uri=None)
    policy = learner_policy(resolve_policy_source(str(tmp_path / "cnn"), None))
    env = gym.make(RUN)
    policy.reset(5)
    obs, _ = env.reset(seed=5)
    observations, actions = [obs], []
    for _ in range(12):
        actions.append(policy.act(obs))
        obs, _, terminated, truncated, _ = env.step(actions[-1])
        observations.append(obs)
        if terminated or truncated:
            break
    env.close()
    model = load_policy(tmp_path / "cnn" / "policy").model
    windows = history_windows(np.asarray(observations[: len(actions)], np.float32), 4)
    np.testing.assert_allclose(np.asarray(actions), np.asarray(model(windows)), rtol=1e-4,
                               atol=1e-4)  # fmt: skip
