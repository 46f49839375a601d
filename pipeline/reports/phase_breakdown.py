"""Survival and distance by the gait phase an episode started from.

The walk expert falls 1.7-2.2 s after some start phases and never after others, so a
policy's survival rate hides where it fails: this splits the episodes of every policy by
start phase (the same seeds give every policy the same start phases) into equal bins.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt
import numpy as np

from pipeline.rollout.episodes import EpisodeResult

BINS = 5
"""Equal-width phase bins: 40 episodes give about 8 per bin."""


def phase_bins(bins: int = BINS) -> list[tuple[float, float]]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    return [(float(a), float(b)) for a, b in pairwise(edges)]


def _in_bin(episodes: list[EpisodeResult], low: float, high: float) -> list[EpisodeResult]:
    return [e for e in episodes if e.start_phase is not None and low <= e.start_phase < high]


def _survivors(episodes: list[EpisodeResult]) -> int:
    """The episodes that did not fall: the one count both the table and the chart show."""
    return sum(not e.fell for e in episodes)


def has_phases(results: dict[str, list[EpisodeResult]]) -> bool:
    """Whether the episodes know their start phase (motion-imitation envs)."""
    return any(e.start_phase is not None for episodes in results.values() for e in episodes)


def phase_rows(results: dict[str, list[EpisodeResult]],
               bins: int = BINS) -> tuple[list[str], list[list[str]]]:  # fmt: skip
    """Columns and rows: per bin, the episodes and per policy ``survived/n`` and the mean
    distance."""
    columns = ["start phase", "episodes"]
    for name in results:
        columns += [f"{name} survived", f"{name} distance m"]
    rows = []
    for low, high in phase_bins(bins):
        row = [f"{low:.1f}-{high:.1f}"]
        counts = {name: _in_bin(episodes, low, high) for name, episodes in results.items()}
        row.append(str(max((len(c) for c in counts.values()), default=0)))
        for episodes in counts.values():
            if not episodes:
                row += ["-", "-"]
                continue
            survived = _survivors(episodes)
            row += [f"{survived}/{len(episodes)}",
                    f"{np.mean([e.distance for e in episodes]):.1f}"]  # fmt: skip
        rows.append(row)
    return columns, rows


def plot_phase_survival(results: dict[str, list[EpisodeResult]], path: Path,
                        bins: int = BINS) -> None:  # fmt: skip
    """Bars: survival rate per start-phase bin, one colour per policy."""
    ranges = phase_bins(bins)
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    width = 0.8 / max(1, len(results))
    for k, (name, episodes) in enumerate(results.items()):
        rates = []
        for low, high in ranges:
            chosen = _in_bin(episodes, low, high)
            rates.append(_survivors(chosen) / len(chosen) if chosen else np.nan)
        ax.bar(np.arange(bins) + (k - (len(results) - 1) / 2) * width, rates, width, label=name)
    ax.set_xticks(range(bins), [f"{a:.1f}-{b:.1f}" for a, b in ranges])
    ax.set_xlabel("start phase of the gait cycle")
    ax.set_ylabel("survival rate")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(results), fontsize=8,
              frameon=False)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
