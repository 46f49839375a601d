"""Survival and distance by start phase (``pipeline.reports.phase_breakdown``), checked cell by
cell on hand-made episodes whose falls, distances and start phases are known."""

from __future__ import annotations

import math

from pipeline.reports.phase_breakdown import has_phases, phase_bins, phase_rows
from pipeline.rollout.episodes import EpisodeResult


def _episode(seed: int, phase: float | None, fell: bool, distance: float) -> EpisodeResult:
    return EpisodeResult(seed=seed, steps=10, survived_s=1.0 if fell else 2.0, fell=fell,
                         distance=distance, ret=0.0, pose_reward=None, wall_s=0.0,
                         start_phase=phase)  # fmt: skip


# Six seeds, the same start phases for every policy (as the same seeds give them):
# 0.05 and 0.15 in the first bin, 0.2 (a bin's lower edge) and 0.35 in the second, 0.5 in
# the third, 0.99 in the last; none in 0.6-0.8.
PHASES = [0.05, 0.15, 0.2, 0.35, 0.5, 0.99]


def test_a_learner_that_fell_everywhere_survives_nowhere() -> None:
    results = {
        "learner": [_episode(s, p, True, 0.4 * s + 0.1) for s, p in enumerate(PHASES)],
        "expert": [_episode(s, p, s in (1, 4), 2.0 + s) for s, p in enumerate(PHASES)],
    }
    columns, rows = phase_rows(results)
    assert columns == ["start phase", "episodes", "learner survived", "learner distance m",
                       "expert survived", "expert distance m"]  # fmt: skip
    assert rows == [
        # bin       n    learner: 0 of n, mean distance   expert: falls at seeds 1 and 4
        ["0.0-0.2", "2", "0/2", "0.3", "1/2", "2.5"],
        ["0.2-0.4", "2", "0/2", "1.1", "2/2", "4.5"],
        ["0.4-0.6", "1", "0/1", "1.7", "0/1", "6.0"],
        ["0.6-0.8", "0", "-", "-", "-", "-"],
        ["0.8-1.0", "1", "0/1", "2.1", "1/1", "7.0"],
    ]


def test_a_learner_that_never_fell_survives_every_bin() -> None:
    results = {"learner": [_episode(s, p, fell=False, distance=1.0)
                           for s, p in enumerate(PHASES)]}  # fmt: skip
    _, rows = phase_rows(results, bins=2)
    assert rows == [["0.0-0.5", "4", "4/4", "1.0"], ["0.5-1.0", "2", "2/2", "1.0"]]


def test_episodes_without_a_start_phase_are_in_no_bin() -> None:
    run_env = {"learner": [_episode(0, None, fell=False, distance=3.0)]}
    assert not has_phases(run_env)
    assert has_phases({"learner": [_episode(0, 0.3, fell=False, distance=3.0)]})
    _, rows = phase_rows(run_env, bins=2)
    assert rows == [["0.0-0.5", "0", "-", "-"], ["0.5-1.0", "0", "-", "-"]]
    assert phase_bins(4) == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]


def test_the_chart_draws_each_bins_survival_rate(tmp_path, monkeypatch) -> None:
    from matplotlib.axes import Axes

    from pipeline.reports.phase_breakdown import plot_phase_survival

    drawn: list[list[float]] = []
    real_bar = Axes.bar

    def bar(self, x, height, *args, **kwargs):
        drawn.append([float(h) for h in height])
        return real_bar(self, x, height, *args, **kwargs)

    monkeypatch.setattr(Axes, "bar", bar)
    results = {
        "learner": [_episode(s, p, fell=True, distance=1.0) for s, p in enumerate(PHASES)],
        "expert": [_episode(s, p, fell=s in (1, 4), distance=2.0) for s, p in enumerate(PHASES)],
    }
    plot_phase_survival(results, tmp_path / "phases.png")
    learner, expert = ([None if math.isnan(h) else h for h in bars] for bars in drawn)
    assert learner == [0.0, 0.0, 0.0, None, 0.0]  # no episode started in 0.6-0.8
    assert expert == [0.5, 1.0, 0.0, None, 1.0]
    assert (tmp_path / "phases.png").stat().st_size > 1000
