"""Train/validation splits by episode.

Steps of one episode are strongly correlated (consecutive states of one trajectory), so a
split by step would leak near-copies of validation samples into training and make the
validation loss look better than the policy is. Splits are therefore lists of episode ids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def validation_count(n_episodes: int, val_fraction: float) -> int:
    """How many of ``n_episodes`` go to validation for ``val_fraction``.

    ``round(val_fraction * n)``, clamped to ``[1, n - 1]`` so both splits are non-empty;
    0 for ``val_fraction == 0``. Raises ValueError for a fraction outside ``[0, 1)`` or
    fewer than two episodes when a validation split is asked for.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float):
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if not (math.isfinite(val_fraction) and 0.0 <= val_fraction < 1.0):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0:
        if n_episodes < 1:
            raise ValueError("cannot split: there are no episodes")
        return 0
    if n_episodes < 2:
        raise ValueError(
            f"cannot split {n_episodes} episode(s) into train and validation: need at least 2 "
            "(or val_fraction=0 to train on all)"
        )
    return min(n_episodes - 1, max(1, round(val_fraction * n_episodes)))


def split_episodes(
    episode_ids: Iterable[int], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Split episode ids into ``(train_ids, val_ids)``, each sorted ascending.

    The split depends only on the *set* of ids, ``val_fraction`` and ``seed`` (the ids
    are sorted before ``np.random.default_rng(seed)`` permutes them), so the same inputs
    always give the same split whatever order the ids come in. With ``val_fraction > 0``
    each split holds at least one episode; ``val_fraction == 0`` puts every episode in
    training (an empty validation list). Raises ValueError for duplicate ids, a fraction
    outside ``[0, 1)`` or too few episodes.
    """
    ids = sorted(int(i) for i in episode_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("episode ids must be unique")
    n_val = validation_count(len(ids), val_fraction)
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in order[:n_val])
    train = sorted(ids[i] for i in order[n_val:])
    return train, val
