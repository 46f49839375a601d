"""PNG plots of a hyperparameter study: the objective against each searched parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt


def plot_objective_vs_params(
    trials: list[dict[str, Any]],
    keys: list[str],
    objective: str,
    out: Path,
    log_keys: frozenset[str] = frozenset(),
) -> list[Path]:
    """One panel per searched key: each finished trial's objective against its value (coarse
    and fine stages in two colours; a log axis for the keys in ``log_keys``, searched on a
    log scale; choices on one shared axis of labels per key)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "objective_vs_params.png"
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        labels = choice_labels(trials, key)
        numeric = not labels
        for stage, colour in (("coarse", "tab:blue"), ("fine", "tab:orange")):
            points = [(t["params"][key], t["value"]) for t in trials
                      if t["stage"] == stage and key in t["params"]]  # fmt: skip
            if points:
                xs, ys = zip(*points, strict=True)
                where = xs if numeric else [labels.index(str(x)) for x in xs]
                ax.scatter(where, ys, color=colour, label=stage, s=18)
        if key in log_keys:
            ax.set_xscale("log")
        if labels:
            ax.set_xticks(range(len(labels)), labels)
        ax.set(xlabel=key, ylabel=objective)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]


def choice_labels(trials: list[dict[str, Any]], key: str) -> list[str]:
    """The x-axis labels of a key whose values are not all numbers (a choice), shared by
    both stages so a value sits at the same place in each; empty for a numeric key."""
    values = [t["params"][key] for t in trials if key in t["params"]]
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
        return []
    return sorted({str(x) for x in values})
