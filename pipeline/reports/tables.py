"""Tables of episodes people read after a rollout: one row per episode and a mean row."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from pipeline.rollout.episodes import EpisodeResult


def number(value: float | None, digits: int = 2) -> str:
    """A number in a terminal table: ``digits`` decimals, ``-`` for none or not finite."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    """A share in a terminal table: ``52%``, ``-`` for none or not finite."""
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"


def episode_table(title: str, results: list[EpisodeResult], summary: dict[str, Any]) -> Table:
    """Per-episode rows and a mean row."""
    table = Table(title=f"{title}, {len(results)} episodes")
    for column in ("seed", "steps", "survived s", "fell", "distance m", "return", "pose reward"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        fell = "yes" if r.fell else "no"
        table.add_row(str(r.seed), str(r.steps), number(r.survived_s), fell,
                      number(r.distance), number(r.ret, 1), number(r.pose_reward, 3))  # fmt: skip

    def mean(key: str) -> float | None:
        return summary[key]["mean"] if key in summary else None

    table.add_section()
    table.add_row("mean", f"{summary['steps'] / len(results):.0f}", number(mean("survived_s")),
                  f"{summary['falls']}/{len(results)}", number(mean("distance")),
                  number(mean("return"), 1), number(mean("pose_reward"), 3))  # fmt: skip
    return table
