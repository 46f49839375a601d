"""A demonstration file's summary as (label, value) rows: ``pipeline inspect`` prints them,
the HTML report shows them."""

from __future__ import annotations

from typing import Any


def _stat(stats: dict[str, Any] | None, digits: int = 1) -> str:
    if not stats or stats.get("mean") is None:
        return "-"
    return (f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} "
            f"[{stats['min']:.{digits}f}, {stats['max']:.{digits}f}]")  # fmt: skip


def _counts(total: int, by_reason: dict[str, int] | None) -> str:
    """``3 (fell: 2, non-finite: 1)``."""
    reasons = ", ".join(f"{reason}: {n}" for reason, n in (by_reason or {}).items())
    return f"{total} ({reasons})" if reasons else str(total)


def dataset_rows(s: dict[str, Any], drops: int) -> list[tuple[str, str]]:
    """Rows of a ``Dataset.summary().to_dict()`` with ``drops`` dropped attempts."""
    survival = s.get("survival_rate")
    rows = [
        ("environment", s["env_id"]),
        ("expert / noise", f"{s.get('expert_id')} / {s.get('noise_scale')}"),
        ("schema version", str(s["schema_version"])),
        ("created", s.get("created", "")),
        ("episodes (pending in journal)", f"{s['episodes']} ({s.get('pending_episodes', 0)})"),
        ("steps", str(s["total_steps"])),
        ("dropped attempts", _counts(drops, s.get("dropped_reasons"))),
        ("survival rate", "-" if survival is None else f"{100 * survival:.1f}%"),
        ("steps per episode", _stat(s.get("steps"), 0)),
        ("return", _stat(s.get("returns"))),
        ("distance m", _stat(s.get("distances"), 2)),
        ("file size", f"{s['file_bytes'] / 1e6:.2f} MB ({s.get('compression')})"),
    ]
    if s.get("camera"):
        per_step = s["image_bytes"] / max(1, s["total_steps"] + s["episodes"])
        rows.append(("images", f"{s['camera']}, {s['image_bytes'] / 1e6:.2f} MB "
                               f"({per_step / 1e3:.1f} KB per frame)"))  # fmt: skip
    return rows
