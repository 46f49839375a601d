"""95% confidence intervals for evaluation summaries: Student's t for means, Wilson for rates.

Evaluations are small (5-100 episodes), so the normal approximation does not do: at 5
episodes ``1.96 s / sqrt(n)`` is 30% narrower than the t interval's ``2.776 s / sqrt(n)``, and
``p +- 1.96 sqrt(p (1 - p) / n)`` collapses to zero width at 0% or 100% survival. Every
summary, evaluation and benchmark takes its intervals from here.

``scipy.stats`` is imported on first use: rollout workers import this module and most never
compute an interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
"""The confidence level of every interval the project reports."""


def mean_half_width(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> float:
    """Half-width of the Student's t interval of the mean of ``values``.

    ``t(1 - (1 - confidence) / 2, n - 1) * s / sqrt(n)`` with the sample standard deviation
    ``s`` (ddof=1). With fewer than two values the spread is unknown and the half-width is
    NaN (not 0, which would claim certainty; JSON reports write it as ``null``).
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2:
        return math.nan
    t = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1))
    return t * float(x.std(ddof=1)) / math.sqrt(x.size)


def wilson_interval(
    successes: int, trials: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` of the rate ``successes / trials``.

    Unlike ``p +- z sqrt(p (1 - p) / n)`` it keeps a sensible width at 0% and 100%, which
    small evaluations often hit. ``(nan, nan)`` when there are no trials.
    """
    from scipy import stats

    if trials <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return (float(ci.low), float(ci.high))
