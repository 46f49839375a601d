"""What ``pipeline report`` writes, read as a reader reads it: the sentence that opens the
page says what the run holds, and the numbers in its tables are the run's own, survival in
percent in every table.

The run folders are written here with the pipeline's own result classes (``DaggerResult``,
``IterationRow``, ``FinalChoice``, ``EvaluateReport``) and writers, as ``pipeline dagger``
and ``pipeline evaluate`` write them, with numbers chosen so that each can be found on the
page (0.525 of 40 episodes must read 52.5%, in its own row); nothing is simulated or trained.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from pipeline.algorithms.dagger import DaggerResult, IterationRow
from pipeline.algorithms.dagger_config import DaggerConfig
from pipeline.algorithms.fit_selection import Candidate, FinalChoice
from pipeline.cli import main
from pipeline.core.outputs import write_json
from pipeline.rollout.episodes import EpisodeResult, summarize
from pipeline.stages.evaluate import EXPERT, LEARNER, RANDOM, EvaluateReport

RUN = "sim/HumanoidRun-v0"
EXPERT_SUMMARY = {"survival_rate": 0.8, "distance": {"mean": 41.5, "ci95": 3.0},
                  "pose_reward": {"mean": 0.9, "ci95": 0.01}}  # fmt: skip
RANDOM_SUMMARY = {"survival_rate": 0.0, "distance": {"mean": 0.25, "ci95": 0.1}}


def _row(iteration: int, survival: float, on_expert: float, out: Path) -> IterationRow:
    return IterationRow(iteration=iteration, beta=math.nan if iteration == 0 else 0.5,
                        episodes_added=0 if iteration == 0 else 10, labels=4000 + 2000 * iteration,
                        survival=survival, survival_on_expert_starts=on_expert,
                        distance=12.5 + iteration, normalized_distance=0.3 + 0.1 * iteration,
                        pose_reward=math.nan, action_error=0.05, val_loss=0.01, rollout_s=1.0,
                        fit_s=1.0, eval_s=1.0,
                        policy_dir=str(out / f"iter-{iteration:02d}" / "policy"))  # fmt: skip


def _dagger_folder(out: Path, final: FinalChoice | None = None) -> Path:
    """``out`` as ``pipeline dagger --eval-episodes 40`` leaves it (its ``dagger.json``):
    iteration 0 survived 25% of the evaluation episodes, iteration 1 52.5%."""
    config = DaggerConfig(iterations=1, eval_episodes=40, eval_seed=1000)
    result = DaggerResult(out_dir=str(out), env_id=RUN,
                          rows=[_row(0, 0.25, 0.3125, out), _row(1, 0.525, 0.65625, out)],
                          expert=EXPERT_SUMMARY, random=RANDOM_SUMMARY,
                          policy_dir=str(out / "policy"), final=final)  # fmt: skip
    payload = {"command": "dagger", "config": json.loads(config.model_dump_json()),
               "train_config": {}, **asdict(result)}  # fmt: skip
    write_json(out / "dagger.json", payload)
    return out


def _page(run: Path, capsys: pytest.CaptureFixture[str]) -> str:
    page = run / "report.html"
    code = main(["report", str(run), "--out", str(page), "--no-track", "--overwrite"])
    assert code == 0, capsys.readouterr().err
    return page.read_text()


def _opening(text: str) -> str:
    """The paragraph that opens the page, under its title."""
    found = re.search(r'<p class="opening">(.*?)</p>', text)
    assert found, "the page has no opening sentence"
    return html.unescape(found.group(1))


def _tables(text: str, title: str) -> list[list[list[str]]]:
    """The tables of the section titled ``title``: rows of cell texts, header first."""
    section = text.split(f"<h2>{html.escape(title)}</h2>", 1)[1].split("<h2>", 1)[0]
    return [[[html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row)]
             for row in re.findall(r"<tr>(.*?)</tr>", table)]
            for table in re.findall(r"<table>(.*?)</table>", section)]  # fmt: skip


def _column(table: list[list[str]], header: str) -> dict[str, str]:
    """First cell of each body row -> its cell in the column ``header``."""
    index = table[0].index(header)
    return {row[0]: row[index] for row in table[1:]}


def test_a_dagger_page_opens_with_the_evaluations_its_run_holds(tmp_path, capsys):
    text = _page(_dagger_folder(tmp_path / "dagger"), capsys)
    opening = _opening(text)
    assert opening.startswith(
        "This DAgger run holds the closed-loop evaluation of each of its 2 iterations' "
        "policies on 40 held-out episodes (seeds 1000-1039), beside the expert and a random "
        "policy on the same episodes, and that of the final policy it published, iteration 1"
    )
    assert "no closed-loop evaluation" not in text


def test_a_dagger_page_shows_survival_in_percent_in_the_right_rows(tmp_path, capsys):
    text = _page(_dagger_folder(tmp_path / "dagger"), capsys)
    [iterations] = _tables(text, "DAgger iterations")
    assert _column(iterations, "survival") == {"0": "25.0%", "1": "52.5%"}
    assert _column(iterations, "on expert starts") == {"0": "31.2%", "1": "65.6%"}
    assert _column(iterations, "labels") == {"0": "4000", "1": "6000"}
    assert "expert on the same seeds: survival 80.0%" in text
    # The results: the final policy (the last iteration's) beside the expert and random.
    [results] = _tables(text, "Results against the expert and a random policy")
    assert results[0] == ["metric", "final policy (iteration 1)", "expert", "random"]
    rows = {row[0]: row[1:] for row in results[1:]}
    assert rows["survival"] == ["52.5%", "80.0%", "0.0%"]
    assert rows["survival on the expert's surviving starts"][0] == "65.6%"
    assert rows["distance m"] == ["13.5", "41.5", "0.25"]
    _assert_survival_in_percent(text)


def test_a_dagger_page_with_a_final_choice_names_the_chosen_fit(tmp_path, capsys):
    out = tmp_path / "dagger"
    candidates = [Candidate("iteration 1", str(out / "iter-01" / "policy"), None, 0.5, 0.4, 13.5),
                  Candidate("final-fit-1", str(out / "final-fit-1" / "policy"), 0, 0.45, 0.3, 12.0),
                  Candidate("final-fit-2", str(out / "final-fit-2" / "policy"), 100, 0.55, 0.5,
                            14.0)]  # fmt: skip
    final = FinalChoice(candidates, "final-fit-2", survival=0.6, survival_on_expert_starts=0.75,
                        distance=15.0, normalized_distance=0.5, pose_reward=math.nan)  # fmt: skip
    text = _page(_dagger_folder(out, final), capsys)
    assert ("and that of the final policy it published, final-fit-2 (chosen among 3 candidates "
            "on 200 selection episodes).") in _opening(text)  # fmt: skip
    [results] = _tables(text, "Results against the expert and a random policy")
    assert results[0][1] == "final policy (final-fit-2)"
    assert {row[0]: row[1] for row in results[1:]}["survival"] == "60.0%"
    [choice] = _tables(text, "DAgger's final policy: the best of 3")
    assert _column(choice, "selection survival") == {"iteration 1": "50.0%",
                                                     "final-fit-1": "45.0%",
                                                     "final-fit-2": "55.0%"}  # fmt: skip
    _assert_survival_in_percent(text)


def _evaluation(folder: Path, policy: Path) -> None:
    """An evaluation of two episodes per policy, as ``pipeline evaluate --out`` writes it."""

    def episode(seed: int, fell: bool) -> EpisodeResult:
        return EpisodeResult(seed=seed, steps=100 if fell else 1000,
                             survived_s=1.6 if fell else 16.5, fell=fell,
                             distance=2.0 if fell else 50.0, ret=100.0, pose_reward=None,
                             wall_s=1.0)  # fmt: skip

    falls = {LEARNER: (False, True), EXPERT: (False, False), RANDOM: (True, True)}
    results = {name: [episode(1000 + i, fell) for i, fell in enumerate(f)]
               for name, f in falls.items()}  # fmt: skip
    report = EvaluateReport(policy=str(policy), env_id=RUN, env_kwargs={}, seeds=[1000, 1001],
                            results=results,
                            summaries={k: summarize(v) for k, v in results.items()})  # fmt: skip
    write_json(folder / "evaluation.json", report.to_dict())


def test_a_dagger_page_names_the_evaluation_in_its_folder(tmp_path, capsys):
    """The run's own evaluation (what the page's hint asks for) is found and named."""
    out = _dagger_folder(tmp_path / "dagger")
    _evaluation(out / "evaluation", out / "policy")
    text = _page(out, capsys)
    assert _opening(text).endswith(
        "; its evaluation/ folder holds an evaluation of learner, expert and random on the "
        "same 2 episodes (seeds 1000-1001).")  # fmt: skip
    [results] = _tables(text, "Results against the expert and a random policy")
    assert results[0] == ["metric", LEARNER, EXPERT, RANDOM]
    assert results[1][0] == "survival [95% CI]"
    assert [cell.split(" ")[0] for cell in results[1][1:]] == ["50%", "100%", "0%"]
    _assert_survival_in_percent(text)


def test_a_training_run_without_evaluation_says_so_first(tmp_path, capsys):
    run = tmp_path / "train"
    run.mkdir()
    (run / "training_run.json").write_text(json.dumps({"best_val_loss": 0.01, "best_epoch": 3}))
    (run / "config.yaml").write_text("seed: 0\n")
    text = _page(run, capsys)
    assert _opening(text) == ("This training run holds its training record and learning "
                              "curves; it holds no closed-loop evaluation.")  # fmt: skip


def _assert_survival_in_percent(text: str) -> None:
    """Every cell of every column or row about survival, in every table, is a percentage."""
    for table in re.findall(r"<table>(.*?)</table>", text):
        rows = [[html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row)]
                for row in re.findall(r"<tr>(.*?)</tr>", table)]  # fmt: skip
        header, body = rows[0], rows[1:]
        cells = [row[i] for row in body for i, name in enumerate(header) if "survival" in name]
        cells += [cell for row in body if "survival" in row[0] for cell in row[1:]]
        shares = [cell for cell in cells if cell != "-"]
        assert all(re.match(r"^\d+(\.\d)?%", cell) for cell in shares), shares
