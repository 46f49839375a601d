"""PNG plots of an evaluation: per-episode bars, joint trajectories, action error over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from pipeline.rollout.episodes import EpisodeResult


def plot_episodes(results: dict[str, list[EpisodeResult]], path: Path) -> None:
    """Survival time and forward distance of every episode, one bar group per seed."""
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.25 * len(next(iter(results.values())))
                                                + 3), 6), sharex=True)  # fmt: skip
    width = 0.8 / len(results)
    for k, (name, episodes) in enumerate(results.items()):
        x = np.arange(len(episodes)) + k * width
        axes[0].bar(x, [r.survived_s for r in episodes], width, label=name)
        axes[1].bar(x, [r.distance for r in episodes], width, label=name)
    seeds = [r.seed for r in next(iter(results.values()))]
    axes[1].set_xticks(np.arange(len(seeds)) + 0.4 - width / 2, [str(s) for s in seeds],
                       rotation=90, fontsize="x-small")  # fmt: skip
    axes[0].set(ylabel="survived (s)", title="per episode")
    axes[1].set(ylabel="forward distance (m)", xlabel="seed")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_trajectories(
    traces: dict[str, np.ndarray],
    names: list[str],
    indices: list[int],
    dt: float,
    path: Path,
    title: str = "joint commands on the same seed",
) -> None:
    """Selected action dimensions (joint targets or torques) over time, one panel each;
    the first seconds only (a few gait cycles), longer when the learner lasts longer."""
    learner_s = len(next(iter(traces.values()))) * dt
    window = max(3.0, min(8.0, 1.5 * learner_s))
    fig, axes = plt.subplots(len(indices), 1, figsize=(8, 1.8 * len(indices) + 0.6),
                             sharex=True, squeeze=False)  # fmt: skip
    for ax, index in zip(axes[:, 0], indices, strict=True):
        for label, actions in traces.items():
            shown = actions[: int(window / dt) + 1]
            ax.plot(np.arange(len(shown)) * dt, shown[:, index], label=label, lw=1)
        ax.set_ylabel(names[index], fontsize="small")
    axes[0, 0].legend(fontsize="small")
    axes[0, 0].set_title(title, fontsize="small")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_action_error(
    curve: list[float], running: list[int] | None, validation_loss: float | None, path: Path
) -> None:
    """On-policy action error per simulated second, against the validation loss."""
    fig = action_error_figure(curve, running, validation_loss)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def action_error_figure(
    curve: list[float], running: list[int] | None, validation_loss: float | None
) -> Figure:
    """The figure of :func:`plot_action_error`. ``running[s]`` episodes are still up in
    second ``s``: the late seconds average over the few episodes that survived, so their
    error means less; grey bars on a second axis show how many."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    seconds = np.arange(len(curve)) + 0.5
    if running:
        counts = ax.twinx()
        counts.bar(seconds, running, width=0.9, color="lightgray", label="episodes running")
        counts.set_ylabel("episodes still running", color="gray")
        counts.set_ylim(0, max(running) * 1.1)
        ax.set_zorder(counts.get_zorder() + 1)  # the error curve in front of the bars
        ax.patch.set_visible(False)
    ax.plot(seconds, curve, marker="o", label="on the learner's states")
    if validation_loss is not None and np.isfinite(validation_loss):
        ax.axhline(validation_loss, color="gray", ls="--", label="validation loss")
    ax.set(xlabel="time in episode (s)", ylabel="action MSE (normalized)", yscale="log",
           title="action error against the expert's relabels")  # fmt: skip
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
