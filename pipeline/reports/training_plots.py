"""PNG plots of a training run: learning curves and per-layer gradient norms."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on training machines

import matplotlib.pyplot as plt


def plot_learning_curves(history: dict[str, list[float]], path: Path) -> None:
    """Training and validation loss per epoch (log scale) and the learning rate."""
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if history.get(key):
            ax.plot(range(1, len(history[key]) + 1), history[key], label=label)
    ax.set(xlabel="epoch", ylabel="loss (normalized actions)", yscale="log", title="loss")
    ax.legend()
    if history.get("lr"):
        ax_lr.plot(range(1, len(history["lr"]) + 1), history["lr"])
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_gradient_norms(history: dict[str, list[float]], path: Path) -> None:
    """Per-layer gradient L2 norm per epoch (log scale): vanishing or exploding shows."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in sorted(k for k in history if k.startswith("grad_norm/")):
        ax.plot(range(1, len(history[key]) + 1), history[key], label=key.split("/", 1)[1])
    ax.set(xlabel="epoch", ylabel="gradient L2 norm", yscale="log", title="gradient norms")
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
