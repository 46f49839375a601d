"""95% intervals: Student's t for means and Wilson for rates, checked against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.core.intervals import mean_half_width, wilson_interval
from pipeline.rollout.episodes import EpisodeResult, summarize

T_975_4 = 2.7764451051977987  # Student's t, 97.5% quantile, 4 degrees of freedom (tables: 2.776)
Z_975 = 1.959963984540054


def textbook_wilson(successes: int, trials: int) -> tuple[float, float]:
    """Wilson (1927) written out, to check the scipy-backed implementation against."""
    p, n, z2 = successes / trials, trials, Z_975**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_975 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def test_mean_half_width_uses_student_t() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    s = math.sqrt(2.5)  # sample standard deviation (ddof=1)
    assert mean_half_width(values) == pytest.approx(T_975_4 * s / math.sqrt(5), rel=1e-12)
    # 41% wider than the normal approximation at 5 samples: z would be 30% too narrow.
    assert mean_half_width(values) / (Z_975 * s / math.sqrt(5)) == pytest.approx(1.4166, abs=1e-4)
    # Large samples approach the normal interval.
    big = np.random.default_rng(0).normal(size=10_000)
    normal = Z_975 * big.std(ddof=1) / math.sqrt(big.size)
    assert mean_half_width(big) == pytest.approx(normal, rel=1e-3)


def test_mean_half_width_of_fewer_than_two_values_is_nan() -> None:
    """One sample says nothing about spread: NaN, never a confident 0."""
    assert math.isnan(mean_half_width([3.0]))
    assert math.isnan(mean_half_width([]))
    assert mean_half_width([2.0, 2.0]) == 0.0


@pytest.mark.parametrize(
    ("successes", "low", "high"),
    [(0, 0.0, 0.087622), (40, 0.912378, 1.0), (20, 0.351995, 0.648005)],
)
def test_wilson_interval_known_values(successes: int, low: float, high: float) -> None:
    got = wilson_interval(successes, 40)
    assert got == pytest.approx((low, high), abs=1e-6)
    assert got == pytest.approx(textbook_wilson(successes, 40), abs=1e-12)


def test_wilson_interval_edge_cases() -> None:
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)


def episode(seed: int, distance: float, fell: bool) -> EpisodeResult:
    return EpisodeResult(seed=seed, steps=10, survived_s=2.0, fell=fell, distance=distance,
                         ret=distance, pose_reward=None, wall_s=0.1)  # fmt: skip


def test_summaries_use_these_intervals() -> None:
    distances = [1.0, 2.0, 3.0, 4.0, 5.0]
    results = [episode(i, d, fell=i == 0) for i, d in enumerate(distances)]
    summary = summarize(results)
    assert summary["distance"]["ci95"] == pytest.approx(T_975_4 * math.sqrt(2.5 / 5))
    assert summary["survival_ci95"] == pytest.approx(textbook_wilson(4, 5), abs=1e-12)

    single = summarize([episode(0, 1.0, fell=False)])
    assert math.isnan(single["distance"]["ci95"])
