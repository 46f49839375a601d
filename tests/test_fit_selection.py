"""The final choice among fits (:mod:`pipeline.algorithms.fit_selection`) without a simulation: the
order of candidates and the configs of the fits. ``tests/test_dagger.py`` runs it whole."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

from pipeline.algorithms.fit_selection import Candidate, FinalChoice, choose, fit_config
from pipeline.training.config import load_config


def _candidate(name: str, survival: float, distance: float, pose: float = math.nan) -> Candidate:
    return Candidate(name, f"/runs/{name}", None, survival, distance, 10 * distance, pose)


def test_survival_decides_then_distance_then_the_earlier_candidate():
    a, b, c = _candidate("a", 0.7, 1.1), _candidate("b", 0.75, 0.9), _candidate("c", 0.75, 1.0)
    assert choose([a, b, c]).name == "c"
    assert choose([a, c, _candidate("d", 0.75, 1.0)]).name == "c"


def test_a_skill_that_does_not_travel_is_ranked_by_its_pose_reward():
    still = [_candidate("a", 0.5, math.nan, 0.8), _candidate("b", 0.5, math.nan, 0.9),
             _candidate("c", 0.4, math.nan, 1.0)]  # fmt: skip
    assert choose(still).name == "b"


def test_fits_start_from_scratch_with_spread_seeds_and_their_own_epochs():
    base = load_config(None, ["seed=7", "training.epochs=40", "init.from_policy=/runs/p"])
    fits = [fit_config(base, k, 80) for k in (1, 2, 3)]
    assert [f.seed for f in fits] == [7, 107, 207]
    assert {f.training.epochs for f in fits} == {80}
    assert {f.init.from_policy for f in fits} == {None}
    assert fit_config(base, 1, None).training.epochs == 40
    assert base.init.from_policy == "/runs/p" and base.seed == 7  # the given config unchanged


def test_a_saved_final_choice_reads_back_and_tabulates_the_published_one():
    candidates = [_candidate("iteration 15", 0.725, 1.01), _candidate("final-fit-1", 0.735, 0.99)]
    final = FinalChoice(candidates, "final-fit-1", 0.773, 0.967, 15.0, 1.04, math.nan)
    saved = json.loads(json.dumps(asdict(final)).replace("NaN", "null"))  # as dagger.json holds it
    again = FinalChoice.from_dict(saved)
    assert math.isnan(again.pose_reward) and math.isnan(again.candidates[0].normalized_pose_reward)
    assert asdict(again) | {"pose_reward": 0} == asdict(final) | {"pose_reward": 0}
    assert again.published().name == "final-fit-1"
    columns, rows, caption = again.table()
    assert columns[0] == "candidate" and columns[-1] == "published"
    assert rows == [["iteration 15", "-", "72.5%", "1.01", ""],
                    ["final-fit-1", "-", "73.5%", "0.99", "yes"]]  # fmt: skip
    assert caption == ("final-fit-1 on the evaluation seeds: survival 77.3%, on the expert's "
                       "starts 96.7%, normalized distance 1.04")  # fmt: skip
