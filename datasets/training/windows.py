"""Observation history windows for temporal policies.

For step ``t`` of an episode the window is ``obs[t-K+1], ..., obs[t]`` (oldest first,
the current observation last). Windows never reach into another episode: at the start of
an episode the missing past is filled by repeating the episode's first observation, which
is what a policy sees at inference after ``reset`` (a rollout keeps a buffer initialised
with the reset observation), so training and deployment agree.

Shapes: with ``history == 1`` the observations are returned unchanged, ``(T, *obs_shape)``,
so a flat (MLP) policy needs no special case; with ``history > 1`` they are
``(T, history, *obs_shape)``, the time axis second.
"""

from __future__ import annotations

import numpy as np


def check_history(history: int) -> int:
    """``history`` as an int >= 1, or a ValueError."""
    if isinstance(history, bool) or not isinstance(history, int | np.integer) or history < 1:
        raise ValueError(f"history must be an integer >= 1, got {history!r}")
    return int(history)


def lookback_start(start: int, history: int) -> int:
    """First row to read so that the windows of steps ``start...`` can be built."""
    return max(0, start - (check_history(history) - 1))


def windows_from_rows(rows: np.ndarray, offset: int, history: int) -> np.ndarray:
    """Windows of the steps ``rows[offset:]``, where ``rows`` begins ``offset`` steps
    earlier in the same episode (``offset < history - 1`` only at the episode start).

    Row indices before the first row clamp to it: that is the "repeat the first
    observation" padding, and it is right only when ``rows[0]`` is the episode's first
    observation or ``offset == history - 1`` (then no index is clamped). Use
    :func:`lookback_start` to choose the first row to read.
    """
    history = check_history(history)
    if history == 1:
        return rows[offset:]
    if not 0 <= offset <= len(rows):
        raise ValueError(f"offset {offset} is outside the {len(rows)} rows")
    steps = np.arange(offset, len(rows))
    index = steps[:, None] + np.arange(1 - history, 1)[None, :]
    return rows[np.maximum(index, 0)]


def history_windows(observations: np.ndarray, history: int) -> np.ndarray:
    """Windows of every row of one episode's observations (module docstring for shapes).

    Pass one episode at a time: rows of different episodes must never share a window.
    """
    return windows_from_rows(np.asarray(observations), 0, history)
