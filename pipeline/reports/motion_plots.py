"""PNG plots of a learned motion: learned against captured joint trajectories, the loss."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt
import numpy as np

from sim.mocap import JOINT_VECTOR_COLUMNS as JOINT_COLUMNS


def _rotation_vectors(vectors: np.ndarray, cols: slice) -> np.ndarray:
    """(N, 3) rotation vectors (axis * angle, radians) of (N, 36) joint vectors' quaternions."""
    q = vectors[:, cols]
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    q = np.where(q[:, :1] < 0, -q, q)  # w >= 0: the shorter of the two rotations
    sin_half = np.linalg.norm(q[:, 1:], axis=1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[:, :1])
    return np.where(sin_half > 1e-12, q[:, 1:] / np.maximum(sin_half, 1e-12) * angle, 0.0)


def plot_joint_trajectories(
    phases: np.ndarray,
    captured: np.ndarray,
    learned: np.ndarray,
    key_phases: np.ndarray,
    key_frames: np.ndarray,
    path: Path,
    title: str,
) -> None:
    """One panel per joint over one cycle: the captured clip (solid; its key frames as
    dots) and the learned motion (dashed). A spherical joint shows its rotation vector's
    three components, a revolute one its angle."""
    fig, axes = plt.subplots(3, 4, figsize=(16, 10), sharex=True)
    colours = ("tab:red", "tab:green", "tab:blue")
    for ax, (name, cols, spherical) in zip(axes.flat, JOINT_COLUMNS, strict=True):
        if spherical:
            cap, lrn = _rotation_vectors(captured, cols), _rotation_vectors(learned, cols)
            key = _rotation_vectors(key_frames, cols)
            for i, colour in enumerate(colours):
                ax.plot(phases, cap[:, i], color=colour, lw=1.5, label=f"captured {'xyz'[i]}")
                ax.plot(phases, lrn[:, i], color=colour, lw=1.5, ls="--")
                ax.plot(key_phases, key[:, i], ".", color=colour, ms=4)
        else:
            ax.plot(phases, captured[:, cols.start], color="k", lw=1.5, label="captured")
            ax.plot(phases, learned[:, cols.start], color="k", lw=1.5, ls="--", label="learned")
            ax.plot(key_phases, key_frames[:, cols.start], ".", color="k", ms=4)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("phase")
    for ax in axes[:, 0]:
        ax.set_ylabel("radians")
    axes.flat[0].legend(fontsize="x-small", loc="best")
    fig.suptitle(f"{title}: captured (solid, key frames as dots) and learned (dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_motion_loss(steps: Sequence[int], loss: Sequence[float], path: Path) -> None:
    """Training loss (squared error, full batch) against gradient steps, log scale."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(list(steps), list(loss))
    ax.set(xlabel="gradient step", ylabel="mean squared error", yscale="log",
           title="motion fit: training loss")  # fmt: skip
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
