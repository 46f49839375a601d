"""Closed-loop checkpoint selection in ``pipeline train`` (``training.rollout_every``): the
policy is rolled out in the real simulation during training and the saved weights are the
best-scored epoch's; the checks survive a resume; the rank correlation between validation
loss and rollout score is reported."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models import load_policy
from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.cli import main
from pipeline.rollout.closed_loop_judge import ClosedLoopJudge, score_key
from pipeline.training.checkpoint_selection import rank_correlation
from pipeline.training.config import load_config

RUN = "sim/HumanoidRun-v0"
SELECT = ["model.hidden_sizes=[32,32]", "data.batch_size=256", "training.epochs=6",
          "training.early_stopping_patience=null", "training.deterministic=true",
          "training.rollout_every=2", "training.rollout_episodes=3",
          "training.rollout_workers=1", "tracking.enabled=false"]  # fmt: skip


@pytest.fixture(scope="module")
def selected(run_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("selection") / "run"
    return out, train_from_file(run_data, load_config(None, SELECT), out)


def test_rollouts_run_on_schedule_and_the_best_epoch_is_saved(selected):
    out, result = selected
    assert [r["epoch"] for r in result.rollouts] == [1, 3, 5]
    best = max(result.rollouts, key=score_key)
    assert result.selected_epoch == best["epoch"] + 1
    for check in result.rollouts:
        assert 0.0 <= check["survival"] <= 1.0 and math.isfinite(check["normalized_distance"])
        assert math.isfinite(check["val_loss"])
    # The saved policy is the selected epoch's: rolled out again on the same seeds, it walks
    # exactly as that check recorded.
    loaded = load_policy(out / "policy")
    judge = ClosedLoopJudge(RUN, loaded.spec, episodes=3, seed=900_000, workers=1)
    again = judge(loaded.model)
    assert again["survival"] == best["survival"]
    assert again["distance"] == pytest.approx(best["distance"], rel=1e-9)
    # What the run would have saved without selection (the last epoch) is kept beside it.
    last = out / "policy_without_selection"
    assert last.is_dir() == (result.selected_epoch != 6)
    if last.is_dir():
        rolled = judge(load_policy(last).model)
        assert rolled["distance"] == pytest.approx(result.rollouts[-1]["distance"], rel=1e-9)
    record = json.loads((out / "training_run.json").read_text())["selection"]
    assert record["selected_epoch"] == result.selected_epoch
    assert record["seeds"] == [900_000, 900_002] and len(record["rollouts"]) == 3
    assert record["rank_correlation"] == result.rank_correlation or (
        math.isnan(record["rank_correlation"]) and math.isnan(result.rank_correlation)
    )


def test_fit_keeps_the_best_judged_weights_not_the_last(run_data, tmp_path):
    """The fit loop's selection with a judge whose scores are given: the middle check wins,
    and the policy ends with exactly the weights that check saw."""
    from pipeline.core.run_files import CHECKPOINT_DIR
    from pipeline.training.fit import FitPlan, fit
    from pipeline.training.inputs import TrainingInputs, dataset_digest, open_training_data
    from pipeline.training.model import build_model

    config = load_config(None, SELECT[:4])
    seen: list[list[np.ndarray]] = []
    survival = iter([0.2, 0.9, 0.5])

    def judge(model):
        seen.append([np.array(w, copy=True) for w in model.get_weights()])
        return {"survival": next(survival), "normalized_distance": 0.5}

    with open_training_data(run_data) as ds:
        inputs = TrainingInputs.prepare(ds, config, dataset_digest(ds))
        built = build_model(config, inputs.spec, 6 * inputs.steps_per_epoch)
        plan = FitPlan(epochs=6, steps_per_epoch=inputs.steps_per_epoch,
                       samples_per_epoch=inputs.train_samples,
                       checkpoint=tmp_path / CHECKPOINT_DIR, rollout_every=2)  # fmt: skip
        outcome = fit(built, inputs.train_batches(0), inputs.val_batches(), plan, judge=judge,
                      score_key=score_key)  # fmt: skip
    assert [r["epoch"] for r in outcome.rollouts] == [1, 3, 5] and outcome.selected_epoch == 4
    final = built.policy.get_weights()
    for kept, judged in zip(final, seen[1], strict=True):
        np.testing.assert_array_equal(kept, judged)
    assert not all(np.array_equal(a, b) for a, b in zip(final, seen[2], strict=True))
    # The last epoch's weights (no restore_best) come back too, for policy_without_selection.
    assert outcome.unselected_weights is not None
    for last, judged in zip(outcome.unselected_weights, seen[2], strict=True):
        np.testing.assert_array_equal(last, judged)


def test_resumed_run_keeps_its_checks_and_choice(selected, run_data, tmp_path):
    out, result = selected

    def stop_after_third_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    config = load_config(None, SELECT)
    with pytest.raises(KeyboardInterrupt):
        train_from_file(run_data, config, tmp_path / "run", on_epoch=stop_after_third_epoch)
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert [r["epoch"] for r in state["rollouts"]] == [1]
    resumed = train_from_file(run_data, config, tmp_path / "run", resume=True)
    assert resumed.rollouts == result.rollouts
    assert resumed.selected_epoch == result.selected_epoch
    for a, b in zip(load_policy(tmp_path / "run" / "policy").model.get_weights(),
                    load_policy(out / "policy").model.get_weights(), strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)


def test_rank_correlation_of_validation_loss_and_rollout_score():
    def checks(losses, survivals):
        return [{"val_loss": v, "survival": s, "normalized_distance": 0.0}
                for v, s in zip(losses, survivals, strict=True)]  # fmt: skip

    # Lower loss, better rollouts, every time: -1.
    assert rank_correlation(checks([3, 2, 1], [0.1, 0.5, 0.9]), score_key) == pytest.approx(-1)
    assert rank_correlation(checks([1, 2, 3], [0.1, 0.5, 0.9]), score_key) == pytest.approx(1)
    assert math.isnan(rank_correlation(checks([1, 2], [0.1, 0.5]), score_key))
    assert math.isnan(rank_correlation(checks([1, 2, 3], [0.5, 0.5, 0.5]), score_key))
    # Survival ties are broken by normalized distance.
    tied = checks([3, 2, 1], [0.5, 0.5, 0.5])
    for check, distance in zip(tied, [0.1, 0.2, 0.3], strict=True):
        check["normalized_distance"] = distance
    assert rank_correlation(tied, score_key) == pytest.approx(-1)


@pytest.mark.parametrize(
    ("override", "message"),
    [("training.rollout_every=0", "training.rollout_every"),
     ("training.rollout_episodes=-1", "training.rollout_episodes")],
)  # fmt: skip
def test_bad_selection_settings_are_one_line(run_data, tmp_path, capsys, override, message):
    code = main(["train", "--data", str(run_data), "--out", str(tmp_path / "x"), override])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x").exists()


def test_evaluate_warns_when_its_seeds_were_used_for_selection(selected, capsys):
    out, _ = selected
    args = ["evaluate", "--policy", str(out), "--episodes", "2", "--workers", "1", "--no-track"]
    code = main([*args, "--seed", "900001"])
    printed, _ = capsys.readouterr()
    assert code == 0
    assert "warning: 2 evaluation seed(s) (900001-900002) are among the seeds" in printed
    assert main([*args, "--seed", "1000"]) == 0
    assert "warning" not in capsys.readouterr()[0]


def test_tracked_run_logs_the_checks_and_the_choice(run_data, tmp_path):
    import mlflow

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [*SELECT[:-1], "training.epochs=2", "training.rollout_every=1",
                 "training.rollout_episodes=2"]  # fmt: skip
    result = train_from_file(
        run_data, load_config(None, overrides), tmp_path / "run", tracking_uri=store
    )
    client = mlflow.MlflowClient(tracking_uri=store)
    history = client.get_metric_history(result.run_id, "rollout/survival")
    assert sorted(m.step for m in history) == [0, 1]
    distances = client.get_metric_history(result.run_id, "rollout/normalized_distance")
    assert [m.value for m in sorted(distances, key=lambda m: m.step)] == pytest.approx(
        [r["normalized_distance"] for r in result.rollouts]
    )
    logged = client.get_run(result.run_id).data.metrics
    assert logged["selection/epoch"] == result.selected_epoch
