"""Checksums of episodes: SHA-256 over their arrays in a fixed order.

For each array, in the order observations, actions, executed_actions, rewards,
terminations, truncations, ``infos/<key>`` sorted by key, then images, the hash is fed the
array's name, its little-endian dtype string and shape (as one ASCII header line) and then its
raw C-order bytes. Missing optional arrays are skipped. The same digest therefore comes
from in-memory arrays before writing and from the stored arrays after reading, whatever
the compression or chunking, and a renamed, reshaped or retyped array changes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from datasets.store.schema import IMAGES, INFOS, OBSERVATIONS, STEP_KEYS

ALGORITHM = "sha256"
_BLOCK_BYTES = 1 << 22
"""Stored arrays are hashed in row blocks of about this size, so memory stays bounded."""


def checksum_order(keys: Iterable[str]) -> list[str]:
    """The keys present, in checksum order (``infos/<key>`` entries sorted, then images)."""
    present = set(keys)
    core = [k for k in (OBSERVATIONS, *STEP_KEYS) if k in present]
    infos = sorted(k for k in present if k.startswith(f"{INFOS}/"))
    images = [IMAGES] if IMAGES in present else []
    unknown = present - set(core) - set(infos) - set(images)
    if unknown:
        raise KeyError(f"not an episode array: {sorted(unknown)}")
    return core + infos + images


def _header(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    return f"{name} {dtype.newbyteorder('<').str} {list(shape)}\n".encode("ascii")


def _row_blocks(array: Any) -> Iterator[np.ndarray]:
    """Yield ``array`` (NumPy or h5py Dataset) in row blocks of bounded size."""
    shape = tuple(array.shape)
    if not shape:
        yield np.asarray(array[()])
        return
    row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * array.dtype.itemsize)
    rows = max(1, _BLOCK_BYTES // row_bytes)
    for start in range(0, shape[0], rows):
        yield np.asarray(array[start : start + rows])


def episode_checksum(arrays: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of an episode's arrays.

    ``arrays`` maps ``observations``, ``actions``, ... and ``infos/<key>`` to NumPy arrays
    or h5py datasets; ``executed_actions`` and infos are optional.
    """
    digest = hashlib.sha256()
    for name in checksum_order(arrays):
        array = arrays[name]
        if array is None:
            continue
        dtype = np.dtype(array.dtype)
        little = dtype.newbyteorder("<")
        digest.update(_header(name, dtype, tuple(array.shape)))
        for block in _row_blocks(array):
            digest.update(np.ascontiguousarray(block, dtype=little).tobytes())
    return f"{ALGORITHM}:{digest.hexdigest()}"


def stored_arrays(group: Any) -> dict[str, Any]:
    """Map checksum keys to the datasets of a stored episode group (nothing read yet)."""
    arrays = {k: group[k] for k in (OBSERVATIONS, *STEP_KEYS) if k in group}
    if INFOS in group:
        for key in group[INFOS]:
            arrays[f"{INFOS}/{key}"] = group[INFOS][key]
    if IMAGES in group:
        arrays[IMAGES] = group[IMAGES]
    return arrays
