"""One self-contained HTML page: tables, pictures and videos embedded as data URIs, style
inline, no script and nothing fetched, so the file opens offline and travels alone (an
MLflow artifact, an e-mail attachment)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; font-size: 1.25em;
border-bottom: 1px solid #ddd; padding-bottom: 0.2em; } .sub { color: #666; }
table { border-collapse: collapse; margin: 0.6em 0; } caption { text-align: left;
font-weight: 600; padding: 0.3em 0; } th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; }
th { background: #f5f5f7; text-align: left; } td { text-align: right;
font-variant-numeric: tabular-nums; } td:first-child { text-align: left; }
figure { margin: 0.8em 0; } figure img, figure video { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; } pre { background: #f5f5f7; padding: 0.8em;
overflow-x: auto; font-size: 0.85em; } .note { color: #8a5a00; }
"""


@dataclass(frozen=True)
class Section:
    """A titled part of the page; ``body`` is HTML built by the helpers below."""

    title: str
    body: str


def esc(text: object) -> str:
    """``text`` as HTML text."""
    return html.escape(str(text), quote=True)


def table(columns: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "") -> str:
    """A table with a header row; every cell is escaped text."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    title = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cell(value: Any) -> str:
    """A number as a page writes it in a table: three significant digits, ``-`` for none."""
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else "-"
    return "-" if value is None else str(value)


def percent(value: Any) -> str:
    """A share as a page writes it: ``52.5%``, ``-`` for none or not finite."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{100 * value:.1f}%"


def paragraph(text: str, note: bool = False) -> str:
    return f'<p class="note">{esc(text)}</p>' if note else f"<p>{esc(text)}</p>"


def preformatted(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def picture(path: Path, caption: str) -> str:
    """A PNG embedded in the page."""
    return (f'<figure><img src="{_data_uri(path, "image/png")}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")  # fmt: skip


def video(path: Path, caption: str) -> str:
    """An MP4 embedded in the page, with the browser's controls."""
    return (f'<figure><video controls muted preload="auto" src="{_data_uri(path, "video/mp4")}">'
            f"</video><figcaption>{esc(caption)}</figcaption></figure>")  # fmt: skip


def page(title: str, subtitle: str, sections: Sequence[Section], opening: str = "") -> str:
    """The whole document; ``opening``: a paragraph under the title, before the sections."""
    parts = [f"<h2>{esc(s.title)}</h2>\n{s.body}" for s in sections]
    first = f'<p class="opening">{esc(opening)}</p>\n' if opening else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>\n{first}"
            + "\n".join(parts) + "\n</body></html>\n")  # fmt: skip
