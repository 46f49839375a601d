"""PNG plot of a comparison: each group's mean with its 95% interval, and every policy."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on training machines

import matplotlib.pyplot as plt


def plot_groups(
    groups: dict[str, dict[str, Any]], policies: list[dict[str, Any]], path: Path
) -> None:
    """Survival and normalized distance per group: bars at the mean, error bars for the
    95% interval over the group's policies, one dot per policy."""
    names = list(groups)
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 2.5 * len(names) + 2), 4))
    panels = (
        (axes[0], "survival", "survival %", 100.0),
        (axes[1], "normalized_distance", "normalized distance", 1.0),
    )
    for ax, key, label, scale in panels:
        means = [scale * groups[n][key]["mean"] for n in names]
        errors = [scale * groups[n][key]["ci95"] if math.isfinite(groups[n][key]["ci95"])
                  else 0.0 for n in names]  # fmt: skip
        ax.bar(names, means, yerr=errors, capsize=6, alpha=0.6)
        for index, name in enumerate(names):
            values = [scale * p[key] for p in policies if p["group"] == name]
            ax.plot([index] * len(values), values, "o", color="black", markersize=4)
        ax.set(ylabel=label, title=label)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
