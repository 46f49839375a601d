"""The final choice among fits (:mod:`pipeline.fit_selection`) without a simulation: the
order of candidates and the configs of the fits. ``tests/test_dagger.py`` runs it whole."""

from __future__ import annotations

import math

from pipeline.fit_selection import Candidate, choose, fit_config
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
