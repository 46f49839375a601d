"""Publishing the dataset file: a new empty file, or a copy with the journal merged in.

The writer (``datasets.store.writer``) never writes into the published file: it commits
every episode as a journal entry, and the file at ``path`` changes only when this module
renames a complete new file over it (:func:`publish_new_file` when a dataset is created,
:func:`publish_merged` when the journal is merged). This module also decides when a merge
is due and recovers what a dead writer left in the journal.

**Merge = copy, append, rename.** From time to time the writer copies the dataset file
to a temporary file, appends the journaled episodes to the copy (``H5Ocopy``: compressed
chunks are copied, not recompressed), records the next attempt index, fsyncs it and
renames it over the file (:func:`publish_merged`); only then are the merged entries
deleted (:func:`delete_merged`). A kill during the merge leaves the old file (plus the
journal) or the new one (plus stale entries, which have attempts below the file's
``next_attempt`` and are ignored and deleted).

**Recovery** happens when the next writer opens the file (``append``/``resume``): under
the lock it deletes temporaries and stale entries and merges the unbroken run of
entries that follow the file's ``next_attempt`` (:func:`recover`). Readers show those
pending entries too, without changing anything, so a dataset always presents exactly the
committed episodes.

**Cost.** A merge copies the whole file, so merges are batched (:class:`MergeSchedule`):
one happens when its estimated cost (the last merge's time, scaled by the file's growth)
is at most ``merge_overhead`` (default 2%) of the time since the previous merge, when
``max_pending`` entries wait, and when the writer closes. A merge needs free space for one
more copy of the file, which the writer checks before it starts one.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path

from datasets.store import journal
from datasets.store.errors import DatasetExistsError, write_error
from datasets.store.h5write import merge_into, new_file_image, session_record
from datasets.store.schema import (
    SCHEMA_VERSION,
    Compression,
    DatasetMetadata,
    package_versions,
    utc_now,
)


def publish_new_file(
    path: Path,
    metadata: DatasetMetadata,
    directory: Path,
    compression: Compression,
    *,
    durable: bool,
    overwrite: bool,
) -> DatasetMetadata:
    """Publish an empty dataset file at ``path``; return its complete metadata.

    The file is built under a temporary name in the journal ``directory`` (whose lock the
    caller holds) and renamed into place; an existing ``path`` is replaced only with
    ``overwrite``. Raises a one-line ``DatasetExistsError`` or ``DatasetWriteError``.
    """
    meta = replace(
        metadata,
        schema_version=SCHEMA_VERSION,
        created=utc_now(),
        package_versions=package_versions(),
        dataset_uuid=uuid.uuid4().hex,
        compression=str(compression),
    )
    tmp = journal.temp_path(directory / "create")
    try:
        session = session_record("create", meta, 0, meta.recording_args)
        tmp.write_bytes(new_file_image(meta, session))
        journal.fault("create:before-publish")
        journal.publish(tmp, path, durable=durable, replace=overwrite)
    except FileExistsError:
        raise DatasetExistsError(f"{path}: already exists; not overwriting it") from None
    except OSError as exc:
        raise write_error(path, "creating the file", exc, safe="nothing was written") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return meta


class MergeSchedule:
    """Decides when a merge is due, from the cost of the last one (module docstring)."""

    def __init__(self, merge_overhead: float, max_pending: int) -> None:
        self._overhead = merge_overhead
        self._max_pending = max(1, max_pending)
        self._last_end = time.monotonic()
        self._last_seconds = 0.0
        self._last_bytes = 1

    def due(self, pending: int, path: Path) -> bool:
        """Whether ``pending`` journal entries of the file ``path`` should be merged now."""
        if pending >= self._max_pending:
            return True
        size = path.stat().st_size
        estimate = self._last_seconds * max(1.0, size / self._last_bytes)
        return estimate <= self._overhead * (time.monotonic() - self._last_end)

    def merged(self, seconds: float, path: Path) -> None:
        """Record a merge that took ``seconds`` and left the file ``path``."""
        self._last_end = time.monotonic()
        self._last_seconds = seconds
        self._last_bytes = max(1, path.stat().st_size)

    def failed(self) -> None:
        """Record a failed merge, so the next try waits as long as after a merge."""
        self._last_end = time.monotonic()


def recover(directory: Path, dataset_uuid: str, next_attempt: int) -> list[journal.JournalEntry]:
    """The entries a dead writer committed after the file's ``next_attempt``; the rest of
    the journal directory (temporaries, stale or foreign entries) is deleted.

    Only safe under the writer lock: nobody else writes to the journal then.
    """
    entries = journal.scan(directory, dataset_uuid, next_attempt)
    journal.clean(directory, keep=entries)
    return entries


def publish_merged(
    path: Path,
    directory: Path,
    entries: list[journal.JournalEntry],
    session: str | None,
    counters: dict[str, int],
    *,
    durable: bool,
) -> None:
    """Replace ``path`` by a copy with ``entries`` and ``session`` appended, atomically.

    The copy is built under a temporary name in the journal ``directory`` and removed
    again if anything fails; ``path`` is only ever replaced by the complete copy.
    Raises ``OSError``.
    """
    tmp = journal.temp_path(directory / "merge")
    try:
        shutil.copyfile(path, tmp)
        journal.fault("merge:after-copy")
        merge_into(tmp, entries, session, counters)
        journal.publish(tmp, path, durable=durable)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def delete_merged(entries: list[journal.JournalEntry]) -> None:
    """Delete journal entries that a published merge made stale (tidying only)."""
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()
        journal.fault("merge:deleted-one")
