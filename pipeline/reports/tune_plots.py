"""PNG plots of a hyperparameter study: the objective against each searched parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt


def plot_objective_vs_params(trials: list[dict[str, Any]], keys: list[str], objective: str,
                             out: Path) -> list[Path]:  # fmt: skip
    """One panel per searched key: each finished trial's objective against its value (coarse
    and fine stages in two colours; a log axis for values spanning over a decade)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "objective_vs_params.png"
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for stage, colour in (("coarse", "tab:blue"), ("fine", "tab:orange")):
            points = [(t["params"][key], t["value"]) for t in trials
                      if t["stage"] == stage and key in t["params"]]  # fmt: skip
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
                ax.scatter(xs, ys, color=colour, label=stage, s=18)
                if min(xs) > 0 and max(xs) / min(xs) > 10:
                    ax.set_xscale("log")
            else:
                labels = sorted({str(x) for x in xs})
                ax.scatter([labels.index(str(x)) for x in xs], ys, color=colour, label=stage, s=18)
                ax.set_xticks(range(len(labels)), labels)
        ax.set(xlabel=key, ylabel=objective)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]
