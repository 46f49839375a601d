"""PNG plot of a learning curve against expert labels: how survival and distance grow as
an algorithm (DAgger, or BC on more demonstrations) spends expert-labelled steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on training machines

import matplotlib.pyplot as plt


def plot_label_curve(
    labels: Sequence[int],
    survival: Sequence[float],
    normalized_distance: Sequence[float],
    path: Path,
    expert_survival: float | None = None,
) -> None:
    """Survival and normalized distance (1 = expert) against expert-labelled steps."""
    fig, (ax_s, ax_d) = plt.subplots(1, 2, figsize=(10, 4))
    ax_s.plot(labels, [100 * s for s in survival], marker="o", label="learner")
    if expert_survival is not None:
        ax_s.axhline(100 * expert_survival, color="gray", linestyle="--", label="expert")
    ax_s.set(xlabel="expert-labelled steps", ylabel="survival %", ylim=(0, 105),
             title="survival")  # fmt: skip
    ax_s.legend()
    ax_d.plot(labels, normalized_distance, marker="o")
    ax_d.axhline(1.0, color="gray", linestyle="--")
    ax_d.set(xlabel="expert-labelled steps", ylabel="(learner - random) / (expert - random)",
             title="normalized distance")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_finetune_curve(runs: Mapping[str, Sequence[Any]], start: dict[str, float],
                        expert: dict[str, float], path: Path) -> None:  # fmt: skip
    """Selection survival and normalized pose reward of fine-tuning runs (name -> their
    selection rows) against environment steps, with the starting policy and the expert as
    lines."""
    fig, (ax_s, ax_p) = plt.subplots(1, 2, figsize=(10, 4))
    for name, selections in runs.items():
        rows = [s for s in selections if s.update >= 0]
        steps = [s.env_steps for s in rows]
        ax_s.plot(steps, [100 * s.survival for s in rows], marker="o", label=name)
        ax_p.plot(steps, [s.normalized_pose_reward for s in rows], marker="o", label=name)
    for name, score, style in (("start", start, ":"), ("expert", expert, "--")):
        if "survival" in score:
            ax_s.axhline(100 * score["survival"], color="gray", linestyle=style, label=name)
        if "normalized_pose_reward" in score:
            ax_p.axhline(score["normalized_pose_reward"], color="gray", linestyle=style)
    ax_s.set(xlabel="environment steps", ylabel="survival % (selection seeds)", ylim=(0, 105),
             title="survival")  # fmt: skip
    ax_s.legend()
    ax_p.set(xlabel="environment steps", ylabel="pose reward / expert's",
             title="normalized pose reward")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
