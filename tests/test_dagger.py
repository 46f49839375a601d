"""``pipeline dagger`` at small scale on HumanoidRun: the mixture rollouts, the expert's
labels, the aggregate's provenance, refits, evaluation rows, and bad input."""

from __future__ import annotations

import html
import itertools
import json
import math
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from datasets import open_dataset
from pipeline.algorithms.dagger import dagger
from pipeline.algorithms.dagger_config import DaggerConfig
from pipeline.cli import main
from pipeline.rollout.demonstration import EXPERT_ACTED, DemoTask, record_demonstration
from pipeline.rollout.episodes import summarize
from pipeline.training.config import load_config

TINY = ["model.hidden_sizes=[32,32]", "data.batch_size=256", "training.epochs=2"]
SMALL = {"iterations": 2, "episodes_per_iteration": 2, "eval_episodes": 2}


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _arrays(path: Path) -> list[tuple[np.ndarray, ...]]:
    with open_dataset(path) as ds:
        return [(e.observations, e.actions) for e in map(ds.episode, ds.episode_ids())]


@pytest.fixture(scope="module")
def run(run_data, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("dagger") / "out"
    result = dagger(run_data, out, DaggerConfig(**SMALL, workers=2), load_config(None, TINY))
    return out, result


def test_dagger_aggregates_mixture_episodes_with_provenance(run, run_data):
    import sim

    out, _ = run
    with open_dataset(run_data) as ds:
        initial = len(ds)
    with open_dataset(out / "aggregate.h5") as ds:
        assert len(ds) == initial + 4
        sessions = [s["recording_args"] for s in ds.sessions]
        assert [s.get("dagger_iteration") for s in sessions] == [None, 1, 2]
        assert [s["beta"] for s in sessions] == [1.0, 0.5, 0.25]
        assert sessions[1]["learner"].endswith("iter-00/policy")
        assert sessions[1]["learner_digest"] != sessions[2]["learner_digest"]
        assert [s.get("compression") for s in sessions[1:]] == ["none", "none"]
        expert = sim.load_expert("humanoid_run")
        for episode_id in range(initial, initial + 4):
            episode = ds.episode(episode_id)
            acted = episode.infos(EXPERT_ACTED)
            executed = episode.executed_actions
            obs, labels = episode.observations[:-1], episode.actions
            # The expert labelled every visited state, whoever acted there.
            np.testing.assert_allclose(labels, expert.act(obs), rtol=1e-5, atol=1e-5)
            # Where the learner acted, what ran differs from the label.
            learner_steps = acted == 0
            assert learner_steps.any()
            assert not np.allclose(executed[learner_steps], labels[learner_steps], atol=1e-3)


def test_dagger_rows_policies_and_report(run):
    out, result = run
    assert [r.iteration for r in result.rows] == [0, 1, 2]
    labels = [r.labels for r in result.rows]
    assert labels[0] < labels[1] < labels[2]
    assert np.isnan(result.rows[0].beta) and result.rows[2].beta == 0.25
    for row in result.rows:
        assert 0.0 <= row.survival <= 1.0 and np.isfinite(row.normalized_distance)
        assert (Path(row.policy_dir) / "manifest.json").is_file()
    # Each row's scores are its policy's own: an independent evaluation on the same seeds.
    from pipeline.rollout.policy_source import resolve_policy_source
    from pipeline.stages.evaluate import (
        EXPERT,
        LEARNER,
        RANDOM,
        EvaluateRequest,
        expert_normalized_scores,
        run_evaluation,
    )

    baselines: dict = {}
    for row in result.rows:
        request = EvaluateRequest(policy=row.policy_dir, episodes=2, seed=1000, workers=1,
                                  compare_expert=not baselines)  # fmt: skip
        alone = run_evaluation(request, resolve_policy_source(row.policy_dir, None))
        baselines = baselines or {k: alone.results[k] for k in (EXPERT, RANDOM)}
        scores = expert_normalized_scores({LEARNER: alone.results[LEARNER], **baselines})
        learner = alone.summaries[LEARNER]
        assert row.survival == learner["survival_rate"], row.iteration
        assert row.distance == pytest.approx(learner["distance"]["mean"]), row.iteration
        assert row.normalized_distance == pytest.approx(scores["normalized_distance"])
        assert row.action_error == pytest.approx(learner["action_error"]["mean"])
    assert result.expert["survival_rate"] == summarize(baselines[EXPERT])["survival_rate"]
    report = json.loads((out / "dagger.json").read_text())
    assert len(report["rows"]) == 3 and report["config"]["beta"] == 0.5
    assert [r["survival"] for r in report["rows"]] == [r.survival for r in result.rows]
    # Warm start: iteration 2 started from iteration 1's policy.
    record = json.loads((out / "iter-02" / "training_run.json").read_text())
    assert record["init_from"]["policy"].endswith("iter-01/policy")
    assert (out / "policy" / "manifest.json").is_file()


def test_iteration_cost_is_split_into_its_parts(run):
    _, result = run
    initial, *rolled = result.rows
    assert np.isnan(initial.sim_s)  # iteration 0 rolls nothing out
    for row in rolled:
        # The workers simulated, the expert relabelled in a batch, this process appended.
        assert row.sim_s > 0 and row.relabel_s > 0 and row.append_s > 0
        assert row.relabel_s < row.sim_s
        assert row.append_s < row.rollout_s
        assert 0 < row.append_cpu_s <= row.append_s + 0.01


def test_same_arguments_same_aggregate_for_any_worker_count(run, run_data, tmp_path):
    out, _ = run
    again = tmp_path / "one-worker"
    config = DaggerConfig(**{**SMALL, "iterations": 1}, workers=1)
    dagger(run_data, again, config, load_config(None, TINY))
    first = _arrays(out / "aggregate.h5")
    second = _arrays(again / "aggregate.h5")
    assert len(second) == len(first) - 2
    for (obs_a, act_a), (obs_b, act_b) in zip(first, second, strict=False):
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(act_a, act_b)


def test_max_labels_is_never_exceeded(run_data, tmp_path):
    with open_dataset(run_data) as ds:
        lengths = [info.total_steps for info in ds.episode_infos()]
    # room for one more episode of the longest length, not for the two asked for
    budget = sum(lengths) + max(lengths) + max(lengths) // 2
    config = DaggerConfig(**SMALL, max_labels=budget, workers=2)
    result = dagger(run_data, tmp_path / "capped", config, load_config(None, TINY))
    rows = result.rows
    assert rows[1].episodes_added == 1  # two asked for, one fits
    for before, row in itertools.pairwise(rows):
        assert row.episodes_added == min(2, (budget - before.labels) // max(lengths))
    assert rows[-1].labels <= budget
    assert len(rows) == 3 or (budget - rows[-1].labels) < max(lengths)  # stopped: none fits


def test_walk_mixture_episodes_end_at_episode_seconds(tmp_path):
    from pipeline.stages.record import RecordConfig, record

    init = tmp_path / "walk.h5"
    record(RecordConfig(out=init, env_id="sim/HumanoidWalk-v0", episodes=2, episode_seconds=1.0))
    config = DaggerConfig(iterations=1, episodes_per_iteration=2, eval_episodes=1,
                          episode_seconds=0.5, workers=1)  # fmt: skip
    dagger(init, tmp_path / "out", config, load_config(None, TINY))
    with open_dataset(tmp_path / "out" / "aggregate.h5") as ds:
        infos = ds.episode_infos()
        added = [
            (len(e.actions), e.truncations[-1] or e.terminations[-1])
            for e in (ds.episode(i.id) for i in infos[2:])
        ]
        args = ds.sessions[-1]["recording_args"]
    one_second = infos[0].total_steps
    assert 25 <= one_second <= 31 and infos[1].total_steps == one_second
    assert len(added) == 2 and args["episode_seconds"] == 0.5
    for steps, ended in added:  # ended by the 0.5 s limit, or by a fall before it
        assert ended and steps <= one_second // 2 + 1


def test_run_mixture_episodes_end_at_episode_seconds(run_data, tmp_path):
    # The run's falls come while it sets off from rest: short mixture episodes put the
    # labels there. 0.3 s of 0.0165-s steps is 18 steps, and the label budget counts
    # them at that length, not at the initial demonstrations' longer one.
    with open_dataset(run_data) as ds:
        initial = len(ds)
        steps = sum(info.total_steps for info in ds.episode_infos())
    config = DaggerConfig(iterations=2, episodes_per_iteration=2, eval_episodes=1,
                          episode_seconds=0.3, max_labels=steps + 2 * 18 + 17,
                          workers=1)  # fmt: skip
    rows = dagger(run_data, tmp_path / "out", config, load_config(None, TINY)).rows
    assert [r.episodes_added for r in rows] == [0, 2]  # then no third 18-step episode fits
    assert rows[-1].labels == steps + 2 * 18
    with open_dataset(tmp_path / "out" / "aggregate.h5") as ds:
        added = [ds.episode(i.id).load() for i in ds.episode_infos()[initial:]]
        assert ds.sessions[-1]["recording_args"]["episode_seconds"] == 0.3
    assert len(added) == 2
    for episode in added:  # ended by the 0.3-s limit (the learner does not fall that soon)
        assert len(episode.actions) == 18 and episode.truncations[-1]


def test_mirror_augmentation_is_warned_about():
    from pipeline.algorithms.dagger import config_warnings

    assert config_warnings(load_config(None, TINY)) == []
    mirrored = load_config(None, [*TINY, "data.augment.mirror_prob=0.5"])
    (warning,) = config_warnings(mirrored)
    assert warning.startswith("data.augment.mirror_prob > 0: mirroring assumes")


def test_learner_only_episode_is_labelled_by_the_expert(run):
    import gymnasium as gym

    import sim
    from models import load_policy
    from pipeline.rollout.policies import LearnedPolicy

    out, _ = run
    learner = LearnedPolicy.from_loaded(load_policy(out / "policy"))
    expert = sim.load_expert("humanoid_run")
    env = gym.make("sim/HumanoidRun-v0")
    try:
        episode = record_demonstration(env, expert, DemoTask(0, 7, beta=0.0), learner)
    finally:
        env.close()
    assert (episode.infos[EXPERT_ACTED] == 0).all()
    learner.reset(0)
    first = learner.act(episode.observations[0]).astype(np.float32)
    np.testing.assert_array_equal(episode.executed_actions[0], first)
    np.testing.assert_allclose(episode.actions, expert.act(episode.observations[:-1]), atol=1e-5)
    with pytest.raises(ValueError, match="needs a learner"):
        record_demonstration(env, expert, DemoTask(0, 7, beta=0.5))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--beta", "1.5"], "--beta: "),
        (["--beta-decay", "-0.1"], "--beta-decay: "),
        (["--iterations", "0"], "--iterations: "),
        (["--episodes-per-iteration", "0"], "--episodes-per-iteration: "),
        (["--env", "sim/HumanoidWalk-v0"], "recorded in sim/HumanoidRun-v0, not --env"),
        (["--max-labels", "10"], "--max-labels 10: below the"),
        (["--episode-seconds", "0"], "--episode-seconds: "),
        (["--lead-seconds", "-1"], "--lead-seconds: "),
        (["--lead-seconds", "nan"], "--lead-seconds: "),
        (["--lead-seconds", "2"], "--lead-seconds 2: needs --episode-seconds"),
        (["--lead-share", "0"], "--lead-share: "),
        (["--lead-share", "1.5"], "--lead-share: "),
        (["--out", "{existing}"], "already exists"),
        (["--final-fits", "-1"], "--final-fits: "),
        (
            ["--final-fits", "1", "--selection-seed", "1030"],
            "--selection-seed 1030: the selection seeds 1030-1229 overlap the evaluation seeds "
            "1000-1039",
        ),
        (["--init-data", "{tmp}/missing.h5"], "--init-data {tmp}/missing.h5: file not found"),
    ],
)
def test_bad_dagger_input_is_one_line(run_data, tmp_path, capsys, extra, message):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    args = ["dagger", "--init-data", str(run_data), "--out", str(tmp_path / "new"),
            "--no-track", *TINY]  # fmt: skip
    for i, word in enumerate(extra):
        extra[i] = word.format(existing=existing, tmp=tmp_path)
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args[1:1] = [flag, value]
    code, _, err = cli(capsys, *args)
    assert code == 2 and err.count("\n") == 1, err
    assert message.format(tmp=tmp_path) in err, err
    assert not (tmp_path / "new").exists()
    assert (existing / "keep.txt").read_text() == "mine"
    shutil.rmtree(existing)


def _weights(policy_dir: Path) -> list[np.ndarray]:
    from models import load_policy

    return load_policy(policy_dir).model.get_weights()


# The fit's resume is also covered by test_train's kill test; the rollout case stays default.
@pytest.mark.parametrize("where", [pytest.param("fit", marks=pytest.mark.slow), "rollout"])
def test_interrupted_run_resumes_to_the_uninterrupted_result(run, run_data, tmp_path,
                                                             monkeypatch, where):  # fmt: skip
    """Interrupted in iteration 2's fit, or after the first episode of iteration 1's
    rollouts: ``resume`` gives the same aggregate and final policy as the run that was
    never interrupted (the module fixture)."""
    import pipeline.algorithms.dagger as dagger_module
    import pipeline.rollout.workers as workers

    out = tmp_path / "killed"
    config = DaggerConfig(**SMALL, workers=1)
    if where == "fit":
        calls = {"n": 0}
        original = dagger_module.train

        def interrupted(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        monkeypatch.setattr(dagger_module, "train", interrupted)
    else:
        original = workers.record_demonstration
        seen = {"n": 0}

        def interrupted(env, expert, task, learner=None):
            if task.beta < 1.0:
                seen["n"] += 1
                if seen["n"] == 2:
                    raise KeyboardInterrupt
            return original(env, expert, task, learner)

        monkeypatch.setattr(workers, "record_demonstration", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dagger(run_data, out, config, load_config(None, TINY))
    monkeypatch.undo()
    result = dagger(run_data, out, config, load_config(None, TINY), resume=True)
    reference, _ = run
    assert [r.iteration for r in result.rows] == [0, 1, 2]
    first, second = _arrays(reference / "aggregate.h5"), _arrays(out / "aggregate.h5")
    assert len(first) == len(second)
    for (obs_a, act_a), (obs_b, act_b) in zip(first, second, strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(act_a, act_b)
    for a, b in zip(_weights(reference / "policy"), _weights(out / "policy"), strict=True):
        np.testing.assert_array_equal(a, b)
    with open_dataset(out / "aggregate.h5") as ds:  # mixture episodes stored uncompressed
        assert {s["recording_args"].get("compression") for s in ds.sessions[1:]} == {"none"}


def test_resume_refuses_nothing_to_resume_and_other_arguments(run_data, tmp_path, capsys):
    args = ["dagger", "--init-data", str(run_data), "--out", str(tmp_path / "none"),
            "--no-track", "--resume", *TINY]  # fmt: skip
    code, _, err = cli(capsys, *args)
    assert code == 2 and "--resume: nothing to resume" in err and err.count("\n") == 1, err
    out = tmp_path / "done"
    dagger(run_data, out, DaggerConfig(iterations=1, episodes_per_iteration=1, eval_episodes=1,
                                       workers=1), load_config(None, TINY))  # fmt: skip
    before = (out / "dagger_state.json").read_text()
    code, _, err = cli(capsys, "dagger", "--init-data", str(run_data), "--out", str(out),
                       "--no-track", "--resume", "--iterations", "1",
                       "--episodes-per-iteration", "1", "--eval-episodes", "1", "--workers",
                       "1", "--beta", "0.7", *TINY)  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert "config differs from the run being resumed (beta: 0.5 there, 0.7 now)" in err, err
    assert (out / "dagger_state.json").read_text() == before


def test_resume_after_the_last_iteration_publishes_again(run_data, tmp_path):
    out = tmp_path / "finished"
    config = DaggerConfig(iterations=1, episodes_per_iteration=1, eval_episodes=1, workers=1)
    first = dagger(run_data, out, config, load_config(None, TINY))
    shutil.rmtree(out / "policy")  # as if killed while publishing
    (out / "dagger.json").unlink()
    (out / "policy.partial").mkdir()
    again = dagger(run_data, out, config, load_config(None, TINY), resume=True)
    assert [asdict(r) for r in again.rows] == [asdict(r) for r in first.rows]
    timing = "steps_per_s_per_worker"
    assert {k: v for k, v in again.expert.items() if k != timing} == {
        k: v for k, v in first.expert.items() if k != timing
    }
    assert (out / "policy" / "manifest.json").is_file() and not (out / "policy.partial").exists()
    for a, b in zip(_weights(out / "policy"), _weights(out / "iter-01" / "policy"), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("final_fits", [0, 1])
def test_tracked_dagger_nests_one_training_run_per_iteration(run_data, tmp_path, final_fits):
    from mlflow import MlflowClient

    from pipeline.tracking import prepare

    uri = prepare(f"sqlite:///{tmp_path / 'mlflow.db'}")
    out = tmp_path / "tracked"
    config = DaggerConfig(iterations=1, episodes_per_iteration=1, eval_episodes=1, workers=1,
                          final_fits=final_fits, selection_episodes=2)  # fmt: skip
    result = dagger(run_data, out, config, load_config(None, TINY), tracking_uri=uri)
    client = MlflowClient(uri)
    parent = client.get_run(result.run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.run_id}'")  # fmt: skip
    assert len(children) == 2 + final_fits  # iterations 0 and 1, then the final fits
    if final_fits:
        assert parent.data.metrics["final/eval_survival"] == result.final.survival
        chosen = next(c for c in result.final.candidates if c.name == result.final.chosen)
        assert parent.data.metrics["final/selection_survival"] == chosen.survival
    else:
        assert result.final is None and not any(k.startswith("final/") for k in parent.data.metrics)
    assert {c.data.tags["stage"] for c in children} == {"train"}
    curve = client.get_metric_history(result.run_id, "eval/normalized_distance")
    assert [m.step for m in curve] == [0, 1]
    assert "model_uri.policy" in parent.data.tags
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert "plots/learning_curve.png" in artifacts
    assert (out / "learning_curve.png").is_file()


def test_report_of_a_dagger_run_shows_its_iterations(run, run_data, tmp_path, capsys):
    out, result = run
    page = tmp_path / "dagger.html"
    code, stdout, err = cli(capsys, "report", str(out), "--out", str(page), "--no-track")
    assert code == 0, err
    text = page.read_text()
    assert "dagger report" in stdout and "<h2>DAgger iterations</h2>" in text
    section = text.split("<h2>DAgger iterations</h2>", 1)[1].split("<h2>", 1)[0]
    table = section.split("</table>", 1)[0]
    cells = [[html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row)]
             for row in re.findall(r"<tr>(.*?)</tr>", table)]  # fmt: skip
    keys = {"iteration": "iteration", "beta": "beta", "labels": "labels",
            "survival": "survival", "on expert starts": "survival_on_expert_starts",
            "distance m": "distance", "norm. distance": "normalized_distance",
            "action error": "action_error", "val loss": "val_loss"}  # fmt: skip
    assert cells[0] == list(keys)

    def shown(key: str, value: float) -> str:  # as the page writes it; NaN (JSON null): "-"
        if isinstance(value, int):
            return str(value)
        if not math.isfinite(value):
            return "-"
        # Survival in percent, as in every other table of the page.
        return f"{100 * value:.1f}%" if key.startswith("survival") else f"{value:.3g}"

    # Each iteration's own numbers, column by column, in iteration order.
    assert cells[1:] == [[shown(key, getattr(row, key)) for key in keys.values()]
                         for row in result.rows]  # fmt: skip
    assert cells[1][1] == "-" and cells[2][1] == "0.5"  # no beta for the demonstrations
    expert = result.expert["survival_rate"]
    assert f"expert on the same seeds: survival {100 * expert:.1f}%</p>" in section
    assert f"--init-data {run_data.resolve()} --config {out / 'iter-00' / 'config.yaml'}" in text
    assert f"--out {out}-again --iterations 2" in text
    assert 'src="data:image/png;base64,' in text  # the learning curve against labels


FINAL = {"iterations": 1, "episodes_per_iteration": 1, "eval_episodes": 2, "workers": 1,
         "final_fits": 2, "final_fit_epochs": 3, "selection_episodes": 3,
         "selection_seed": 3000}  # fmt: skip


@pytest.fixture(scope="module")
def final_run(run_data, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("final") / "out"
    return out, dagger(run_data, out, DaggerConfig(**FINAL), load_config(None, TINY))


def test_final_fits_publish_the_candidate_that_walks_best(final_run):
    from pipeline.rollout.policy_source import resolve_policy_source
    from pipeline.stages.evaluate import LEARNER, EvaluateRequest, run_evaluation
    from pipeline.training.config import load_config as load_run_config

    out, result = final_run
    final = result.final
    assert [(c.name, c.training_seed) for c in final.candidates] == [
        ("iteration 1", None), ("final-fit-1", 0), ("final-fit-2", 100)]  # fmt: skip
    best = max(final.candidates, key=lambda c: (c.survival, c.normalized_distance))
    assert final.chosen == best.name
    for a, b in zip(_weights(out / "policy"), _weights(Path(best.policy_dir)), strict=True):
        np.testing.assert_array_equal(a, b)
    fitted = load_run_config(out / "final-fit-2" / "config.yaml")
    assert (fitted.seed, fitted.training.epochs, fitted.init.from_policy) == (100, 3, None)
    # The judge ran the selection seeds as pipeline evaluate runs them.
    for candidate in final.candidates:
        request = EvaluateRequest(policy=candidate.policy_dir, episodes=3, seed=3000, workers=1,
                                  compare_expert=False)  # fmt: skip
        report = run_evaluation(request, resolve_policy_source(candidate.policy_dir, None))
        assert report.summaries[LEARNER]["survival_rate"] == candidate.survival
    saved = json.loads((out / "dagger.json").read_text())["final"]
    assert saved["chosen"] == final.chosen and len(saved["candidates"]) == 3
    # The published policy's scores are its own on the evaluation seeds.
    request = EvaluateRequest(policy=str(out / "policy"), episodes=FINAL["eval_episodes"],
                              seed=1000, workers=1, compare_expert=False)  # fmt: skip
    report = run_evaluation(request, resolve_policy_source(str(out / "policy"), None))
    assert final.survival == report.summaries[LEARNER]["survival_rate"]
    assert final.distance == pytest.approx(report.summaries[LEARNER]["distance"]["mean"])


def _report_page(capsys, run: Path, page: Path) -> str:
    code, _, err = cli(capsys, "report", str(run), "--out", str(page), "--no-track")
    assert code == 0, err
    return page.read_text()


def test_report_of_a_dagger_run_shows_its_final_choice(final_run, tmp_path, capsys):
    out, result = final_run
    section = _report_page(capsys, out, tmp_path / "final.html").split(
        "<h2>DAgger&#x27;s final policy: the best of 3</h2>", 1)[1]  # fmt: skip
    rows = section.split("</tbody>", 1)[0].split("<tr><td>")[1:]
    assert [row.split("</td>", 1)[0] for row in rows] == [
        c.name for c in result.final.candidates]  # fmt: skip
    published = [row for row in rows if "<td>yes</td>" in row]
    assert len(published) == 1 and published[0].startswith(f"{result.final.chosen}</td>")
    assert f"survival {100 * result.final.survival:.1f}%" in section


@pytest.mark.parametrize("chosen", ["iteration 1", "final-fit-2"])
def test_report_of_a_dagger_run_shows_the_published_policys_training(final_run, tmp_path,
                                                                     capsys, chosen):  # fmt: skip
    """The training summary and config on the page are those of the run that made the
    published policy: a final fit's when one was chosen, else the last iteration's."""
    reference, result = final_run
    out = tmp_path / "run"
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns("*.h5", "policy"))
    saved = json.loads((out / "dagger.json").read_text())
    saved["final"]["chosen"] = chosen
    (out / "dagger.json").write_text(json.dumps(saved))
    text = _report_page(capsys, out, tmp_path / "page.html")
    shown = {c.name: html.escape((Path(c.policy_dir).parent / "config.yaml").read_text()) in text
             for c in result.final.candidates}  # fmt: skip
    assert shown == {c.name: c.name == chosen for c in result.final.candidates}


@pytest.mark.parametrize("final", [{"chosen": "final-fit-9"}, {"candidates": [{"name": 1}]}, [3]])
def test_report_refuses_a_final_choice_it_cannot_read(final_run, tmp_path, capsys, final):
    reference, _ = final_run
    out = tmp_path / "run"
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns("*.h5", "policy"))
    saved = json.loads((out / "dagger.json").read_text())
    saved["final"] = {**saved["final"], **final} if isinstance(final, dict) else final
    (out / "dagger.json").write_text(json.dumps(saved))
    page = tmp_path / "page.html"
    code, _, err = cli(capsys, "report", str(out), "--out", str(page), "--no-track")
    assert code == 2 and not page.exists()
    assert err.strip().count("\n") == 0 and "'final' is not a final choice" in err, err


def test_final_choice_resumes_with_the_candidates_it_had_judged(final_run, run_data, tmp_path):
    """Killed after judging the first fit: the resumed run judges only the second and
    publishes what the uninterrupted run published."""
    reference, first = final_run
    out = tmp_path / "resumed"
    shutil.copytree(reference, out)
    state = json.loads((out / "dagger_state.json").read_text())
    state["final"] = state["final"][:2]
    (out / "dagger_state.json").write_text(json.dumps(state))
    shutil.rmtree(out / "policy")
    judged: list[str] = []
    again = dagger(run_data, out, DaggerConfig(**FINAL), load_config(None, TINY), resume=True,
                   on_candidate=lambda c: judged.append(c.name))  # fmt: skip
    assert judged == ["final-fit-2"]
    assert again.final.chosen == first.final.chosen
    assert [asdict(c) | {"policy_dir": ""} for c in again.final.candidates] == [
        asdict(c) | {"policy_dir": ""} for c in first.final.candidates]  # fmt: skip
    for a, b in zip(_weights(out / "policy"), _weights(reference / "policy"), strict=True):
        np.testing.assert_array_equal(a, b)
