"""A contact sheet of recorded camera frames: a few episodes as rows, frames evenly spaced
in time as columns, so a glance shows what the policy's camera saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

GUTTER = 2
"""White pixels between frames."""


def tile(rows: list[list[np.ndarray]]) -> np.ndarray:
    """One uint8 image of equally sized (H, W, 3) frames laid out row by row."""
    height, width, _ = rows[0][0].shape
    columns = max(len(row) for row in rows)
    sheet = np.full((len(rows) * (height + GUTTER) - GUTTER,
                     columns * (width + GUTTER) - GUTTER, 3), 255, dtype=np.uint8)  # fmt: skip
    for r, row in enumerate(rows):
        for c, frame in enumerate(row):
            top, left = r * (height + GUTTER), c * (width + GUTTER)
            sheet[top : top + height, left : left + width] = frame
    return sheet


def sheet_rows(views: list[Any], frames: int) -> list[list[np.ndarray]]:
    """``frames`` frames from each stored episode, evenly spaced from its first to its last
    state; only those frames are read from the file."""
    rows = []
    for view in views:
        images = view.images
        picks = np.unique(np.linspace(0, len(images) - 1, frames).round().astype(int))
        rows.append([images[int(i)] for i in picks])
    return rows


def write_contact_sheet(views: list[Any], path: Path, frames: int = 6) -> Path:
    """Write the sheet of ``views`` (stored episodes with images) as a PNG."""
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, tile(sheet_rows(views, frames)))
    return path
