"""Checks that turn a bad file, bad metadata or a bad output path into one clear line.

Reading side: :func:`open_h5` (missing, empty, non-HDF5, truncated files),
:func:`check_file` (format, schema version, required attributes) and
:func:`check_episode` (an episode group's attributes, arrays, dtypes and shapes).
Writing side: :func:`check_metadata`, :func:`check_directory`, :func:`check_compatible`,
and for any new output :func:`location_problem` (checked before work starts) and
:func:`make_directories` / :func:`remove_directories` (missing folders created once the
inputs passed, and removed again if the work fails, so a failure leaves nothing new).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import h5py
import numpy as np

from datasets.store.errors import (
    DatasetError,
    DatasetNotFoundError,
    IncompatibleDatasetError,
    NotHDF5Error,
    OutputDirectoryError,
    SchemaError,
    SchemaVersionError,
    TruncatedFileError,
    first_line,
)
from datasets.store.schema import (
    ACTIONS,
    DROPPED_ATTEMPTS,
    EPISODE_ATTRS,
    EXECUTED_ACTIONS,
    FILE_ATTRS,
    FORMAT_NAME,
    IMAGES,
    INFOS,
    OBSERVATIONS,
    REWARDS,
    SCHEMA_VERSION,
    SESSIONS,
    STORAGE_DTYPES,
    TERMINATIONS,
    TRUNCATIONS,
    DatasetMetadata,
    EpisodeInfo,
    SpaceSpec,
)

_TRUNCATED = re.compile(r"eof = (\d+).*stored_eof = (\d+)")


def open_h5(path: Path) -> h5py.File:
    """Open an HDF5 file read-only, turning every failure into a one-line DatasetError."""
    if not path.exists():
        raise DatasetNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise NotHDF5Error(f"{path}: is a directory, not an HDF5 file")
    try:
        if path.stat().st_size == 0:
            raise NotHDF5Error(f"{path}: empty file, not an HDF5 file")
        if not h5py.is_hdf5(path):
            raise NotHDF5Error(f"{path}: not an HDF5 file (no HDF5 signature)")
        return h5py.File(path, "r")
    except OSError as exc:
        found = _TRUNCATED.search(str(exc))
        if "truncated file" in str(exc) and found:
            raise TruncatedFileError(
                f"{path}: truncated HDF5 file (only {found.group(1)} of {found.group(2)} "
                "bytes present), e.g. from an interrupted copy"
            ) from None
        raise DatasetError(f"{path}: cannot open as HDF5 ({first_line(exc)})") from None


def check_file(f: h5py.File, where: str) -> DatasetMetadata:
    """Check the root attributes of our schema; return the metadata they describe."""
    fmt = f.attrs.get("format")
    if fmt is None:
        raise SchemaError(f"{where}: not a demonstration file (no 'format' attribute)")
    if str(fmt) != FORMAT_NAME:
        raise SchemaError(f"{where}: not a demonstration file (format is {str(fmt)!r})")
    version = f.attrs.get("schema_version")
    if version is None:
        raise SchemaError(f"{where}: missing file attribute 'schema_version'")
    if int(version) != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where}: schema version {int(version)}, but this code reads version {SCHEMA_VERSION}"
        )
    for key in FILE_ATTRS:
        if key not in f.attrs:
            raise SchemaError(f"{where}: missing file attribute {key!r}")
    for key in (DROPPED_ATTEMPTS, SESSIONS):
        if key not in f:
            raise SchemaError(f"{where}: missing dataset {key!r}")
    try:
        return DatasetMetadata.from_attrs(f.attrs)
    except (ValueError, KeyError, TypeError) as exc:
        raise SchemaError(f"{where}: unreadable file attributes ({first_line(exc)})") from None


def expect(ok: bool, where: str, problem: str) -> None:
    """Raise ``SchemaError("<where>: <problem>")`` unless ``ok``."""
    if not ok:
        raise SchemaError(f"{where}: {problem}")


def check_episode(group: h5py.Group, meta: DatasetMetadata, where: str) -> EpisodeInfo:
    """Check one episode group's attributes, arrays, dtypes and shapes (reads no data)."""
    for key in EPISODE_ATTRS:
        expect(key in group.attrs, where, f"missing attribute {key!r}")
    expect(bool(group.attrs["committed"]), where, "not marked committed")
    info = EpisodeInfo.from_attrs(group.attrs)
    steps = info.total_steps
    expected = {
        OBSERVATIONS: (steps + 1, *meta.observation_space.shape),
        ACTIONS: (steps, *meta.action_space.shape),
        EXECUTED_ACTIONS: (steps, *meta.action_space.shape),
        REWARDS: (steps,),
        TERMINATIONS: (steps,),
        TRUNCATIONS: (steps,),
    }
    for key, shape in expected.items():
        if key not in group:
            expect(key == EXECUTED_ACTIONS, where, f"missing dataset {key!r}")
            continue
        data = group[key]
        expect(isinstance(data, h5py.Dataset), where, f"{key!r} is not a dataset")
        expect(data.shape == shape, where, f"{key} has shape {data.shape}, expected {shape}")
        expect(data.dtype == STORAGE_DTYPES[key], where, f"{key} has dtype {data.dtype}")
    for key, data in group.get(INFOS, {}).items():
        expect(data.shape[:1] == (steps,), where, f"infos/{key} does not have {steps} rows")
    if meta.camera is None:
        expect(IMAGES not in group, where, "has images but the file names no camera")
    else:
        expect(IMAGES in group, where, "missing dataset 'images' (the file has a camera)")
        shape = (steps + 1, *meta.camera.frame_shape)
        images = group[IMAGES]
        expect(images.shape == shape and images.dtype == np.uint8, where,
               f"images have shape {images.shape} dtype {images.dtype}, expected {shape} "
               "uint8")  # fmt: skip
    expect(info.checksum.startswith("sha256:"), where, "checksum attribute is not sha256")
    return info


def check_compatible(path: Path, have: DatasetMetadata, want: DatasetMetadata) -> None:
    """Refuse to append a recording of another env or other spaces to ``path``."""

    def fail(problem: str) -> IncompatibleDatasetError:
        return IncompatibleDatasetError(f"{path}: cannot append: {problem}")

    if have.env_id != want.env_id:
        raise fail(f"the file holds {have.env_id!r} episodes, this recording is {want.env_id!r}")
    if have.camera != want.camera:
        describe = {c: c.describe() if c else "no camera" for c in (have.camera, want.camera)}
        raise fail(f"the file's camera is {describe[have.camera]}, this recording's "
                   f"{describe[want.camera]}")  # fmt: skip
    spaces = [("observation", have.observation_space, want.observation_space)]
    spaces.append(("action", have.action_space, want.action_space))
    for name, a, b in spaces:
        if (a.shape, a.dtype) != (b.shape, b.dtype):
            raise fail(f"{name} space differs (file {a.describe()}, recording {b.describe()})")
        bounds_a, bounds_b = np.array([a.low, a.high]), np.array([b.low, b.high])
        if not np.array_equal(bounds_a, bounds_b, equal_nan=True):
            raise fail(f"{name} space bounds differ from the file's")


def check_metadata(meta: DatasetMetadata) -> None:
    """Check the metadata a new file is created with."""
    if not meta.env_id:
        raise DatasetError("metadata: env_id must not be empty")
    for name in ("observation_space", "action_space"):
        if not isinstance(getattr(meta, name), SpaceSpec):
            raise DatasetError(f"metadata: {name} must be a SpaceSpec")
    try:
        json.dumps(meta.env_kwargs)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"metadata: env_kwargs is not JSON-serialisable ({exc})") from None


def check_directory(path: Path) -> None:
    """The file's directory must exist (writability shows when the journal is created)."""
    parent = path.parent
    if not parent.exists():
        raise OutputDirectoryError(f"{path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputDirectoryError(f"{path}: {parent} is not a directory")
    if path.is_dir():
        raise OutputDirectoryError(f"{path}: is a directory, not a file")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``.`` for a relative path)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def location_problem(path: Path) -> str | None:
    """Why the file or folder ``path`` cannot be created, or None (see
    :func:`directory_problem`; its folder need not exist yet)."""
    return directory_problem(path.parent)


def directory_problem(directory: Path) -> str | None:
    """Why nothing can be written into ``directory``, or None: it, or else its closest
    existing ancestor, must be a writable directory (missing folders in between are
    created by :func:`make_directories`)."""
    ancestor = _nearest_existing(directory)
    if not ancestor.is_dir():
        return f"{ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"directory {ancestor} is not writable"
    return None


def make_directories(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; returns the ones created, outermost
    first (for :func:`remove_directories`)."""
    created = []
    path = directory
    while not path.exists() and path != path.parent:
        created.append(path)
        path = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    return created[::-1]


def remove_directories(created: list[Path]) -> None:
    """Remove what :func:`make_directories` created, innermost first, where still empty."""
    for directory in reversed(created):
        with contextlib.suppress(OSError):
            directory.rmdir()
