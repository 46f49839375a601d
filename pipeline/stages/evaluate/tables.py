"""What an evaluation prints: its policies side by side (means with 95% intervals), the
expert-normalized scores and compounding error, and one line per video."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from pipeline.rollout.action_noise import describe_action_noise
from pipeline.rollout.filming import first_fall, no_fall_line
from pipeline.rollout.options import describe_push
from pipeline.stages.evaluate.request import LEARNER, EvaluateReport


def video_lines(report: EvaluateReport) -> list[str]:
    """One line per video: path, seed and what it shows (why that seed)."""
    lines = [f.line() for f in report.filmed]
    if report.filmed and first_fall(report.results[LEARNER]) is None:
        lines.append(no_fall_line(LEARNER))
    return lines


def _stat(summary: dict[str, Any], key: str, digits: int = 2) -> str:
    value = summary.get(key)
    if not isinstance(value, dict) or not math.isfinite(value["mean"]):
        return "-"
    return f"{value['mean']:.{digits}f} ± {value['ci95']:.{digits}f}"


def _rate(summary: dict[str, Any]) -> str:
    low, high = summary["survival_ci95"]
    return f"{100 * summary['survival_rate']:.0f}% [{100 * low:.0f}-{100 * high:.0f}]"


def metric_rows(report: EvaluateReport) -> tuple[str, list[tuple[str, list[str]]]]:
    """The title and the rows (metric, one cell per policy) of the side-by-side table:
    means ± 95% confidence half-widths; the terminal and the HTML report both show it."""
    n = len(report.seeds)
    title = (f"{report.env_id}, {n} episodes, seeds {report.seeds[0]}-{report.seeds[-1]} "
             "(mean ± 95% CI)")  # fmt: skip
    rows = [("survival [95% CI]", lambda s: _rate(s))]
    for label, key, digits in (("survived s", "survived_s", 1), ("distance m", "distance", 2),
                               ("speed m/s", "speed", 2), ("return", "return", 0),
                               ("pose reward", "pose_reward", 3),
                               ("action error", "action_error", 3)):  # fmt: skip
        if any(isinstance(s.get(key), dict) for s in report.summaries.values()):
            rows.append((label, lambda s, k=key, d=digits: _stat(s, k, d)))
    return title, [(label, [cell(s) for s in report.summaries.values()]) for label, cell in rows]


def results_table(report: EvaluateReport) -> Table:
    """One column per policy, one row per metric: means ± 95% confidence half-widths."""
    title, rows = metric_rows(report)
    table = Table(title=title)
    table.add_column("metric")
    for name in report.summaries:
        table.add_column(name, justify="right", no_wrap=True)
    for label, cells in rows:
        table.add_row(label, *cells)
    return table


def summary_lines(report: EvaluateReport) -> list[str]:
    """Expert-normalized scores, survival on the expert's starts, compounding error."""
    lines = []
    push = report.env_kwargs.get("push")
    if push:
        lines.append(f"pushed: {describe_push(push)}")
    if report.action_noise > 0:
        lines.append(f"perturbed: {describe_action_noise(report.action_noise)}")
    scores = report.scores
    if scores:
        shown = [f"{name} {scores[f'normalized_{key}']:.2f}"
                 for name, key in (("return", "return"), ("distance", "distance"),
                                   ("pose reward", "pose_reward"))
                 if math.isfinite(scores.get(f"normalized_{key}", math.nan))]  # fmt: skip
        lines.append(f"expert-normalized score (0 = random, 1 = expert): {', '.join(shown)}")
        low, high = scores["survival_on_expert_surviving_starts_ci95"]
        rate = scores["survival_on_expert_surviving_starts"]
        lines.append(
            f"survival on the {scores['expert_surviving_starts']} starts the expert survives: "
            + (
                "-"
                if not math.isfinite(rate)
                else f"{100 * rate:.0f}% [{100 * low:.0f}-{100 * high:.0f}]"
            )
        )
    curve = report.summaries[LEARNER].get("action_error_by_second")
    if curve:
        shown = ", ".join(f"{s}s {v:.3f}" for s, v in enumerate(curve) if s in _marks(len(curve)))
        val = report.validation_loss
        against = f" (validation loss {val:.3f})" if val is not None and math.isfinite(val) else ""
        lines.append(f"on-policy action error by second: {shown}{against}")
    return lines


def _marks(length: int) -> set[int]:
    return {0, 1, 2, 5, 10, 15, length - 1} & set(range(length))
