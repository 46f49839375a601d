"""Tables of episodes people read after a rollout: one row per episode and a mean row."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from pipeline.rollout.episodes import EpisodeResult


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def episode_table(title: str, results: list[EpisodeResult], summary: dict[str, Any]) -> Table:
    """Per-episode rows and a mean row."""
    table = Table(title=f"{title}, {len(results)} episodes")
    for column in ("seed", "steps", "survived s", "fell", "distance m", "return", "pose reward"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        fell = "yes" if r.fell else "no"
        table.add_row(str(r.seed), str(r.steps), _fmt(r.survived_s), fell,
                      _fmt(r.distance), _fmt(r.ret, 1), _fmt(r.pose_reward, 3))  # fmt: skip

    def mean(key: str) -> float | None:
        return summary[key]["mean"] if key in summary else None

    table.add_section()
    table.add_row("mean", f"{summary['steps'] / len(results):.0f}", _fmt(mean("survived_s")),
                  f"{summary['falls']}/{len(results)}", _fmt(mean("distance")),
                  _fmt(mean("return"), 1), _fmt(mean("pose_reward"), 3))  # fmt: skip
    return table
