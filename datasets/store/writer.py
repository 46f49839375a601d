"""The crash-safe episode writer.

Why not append to the HDF5 file in place: HDF5 has no journal. An append rewrites
metadata blocks (superblock, B-trees, heaps) in place, and HDF5's metadata cache writes
them back at moments of its choosing, so a process killed mid-append can leave a file that
no longer opens at all. Measured here: 12 of 12 SIGKILLed in-place writers lost the whole
file. The design below never writes into the published file.

**Invariant.** The dataset file at ``path`` is only ever replaced by ``rename`` of a
complete, closed and fsync'ed copy. POSIX ``rename`` is atomic, so at every instant the
name refers either to the old complete file or to the new complete file.

**Commit = a journal entry.** :meth:`EpisodeWriter.commit` builds the episode as a small
HDF5 file in memory, writes it under a temporary name in ``<path>.journal/``, fsyncs it,
renames it to its final name (``<uuid>-<attempt>.episode.h5``) and fsyncs the directory.
When ``commit`` returns the episode is durable: a kill afterwards cannot lose it; a kill
before the rename leaves only a ``.tmp`` file, which is never read. Drops are journaled
the same way (JSON). Entries are written one at a time, so the durable entries always
form an unbroken run of attempts.

**Merge = copy, append, rename.** From time to time the writer copies the dataset file,
appends the journaled episodes to the copy and renames it over ``path``; the next writer
that opens the file recovers what a dead one left in the journal. ``datasets.store.publish``
explains both, and when a merge is due.

**Why a kill cannot break it.** Every step that changes what a reader sees is a single
``rename`` of a complete file, and every other step writes only files no reader uses
(temporaries, a private copy). SIGKILL does not lose data the kernel already accepted,
so the fsyncs are for power loss (``durable=False`` skips them and stays kill-safe).
``tests/test_store_crash.py`` kills a recorder at random moments and at each of these
steps, and checks the invariant after every kill.

**Errors.** A failing write (disk full, read-only file system) raises a one-line
:class:`DatasetWriteError`; nothing published is touched. HDF5 itself never sees a
failing write (see ``datasets.store.h5write``), because after one it can crash the process.
A merge that was only opportunistic does not fail the commit that triggered it (that
episode is already durable); :meth:`EpisodeWriter.flush` and :meth:`~EpisodeWriter.close`
report it.

**Cost.** A merge copies the whole file, so merges are batched (``merge_overhead``,
``max_pending``; see ``datasets.store.publish``). The writer keeps no episode data in memory
between commits, and a merge needs free space for one more copy of the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from datasets.store import journal
from datasets.store.checks import check_compatible, check_directory, check_metadata
from datasets.store.episodes import check_seed, episode_attrs, non_finite_report, prepare_arrays
from datasets.store.errors import (
    AttemptOrderError,
    DatasetError,
    DatasetExistsError,
    DatasetWriteError,
    WriterClosedError,
    write_error,
)
from datasets.store.h5write import episode_file_image, session_record
from datasets.store.publish import (
    MergeSchedule,
    delete_merged,
    publish_merged,
    publish_new_file,
    recover,
)
from datasets.store.reader import open_dataset, validate
from datasets.store.schema import SESSIONS, Compression, DatasetMetadata, Episode


@dataclass(frozen=True)
class CommitResult:
    """What :meth:`EpisodeWriter.commit` did with an episode."""

    committed: bool
    """True when the episode is now durably part of the dataset."""
    episode_id: int | None
    """Its id, or None when it was rejected."""
    attempt: int
    """The attempt index it used (a rejected episode is logged as a dropped attempt)."""
    reason: str | None
    """Why it was rejected, e.g. ``rejected: non-finite values in actions (2 NaN)``."""


@dataclass
class WriterStats:
    """Counters of one writer session (for progress bars and overhead measurements)."""

    committed: int = 0
    """Episodes committed."""
    dropped: int = 0
    """Attempts dropped, including rejected episodes."""
    rejected: int = 0
    """Episodes rejected for NaN/Inf values."""
    merges: int = 0
    """Merges of the journal into the file."""
    merge_seconds: float = 0.0
    """Wall time spent merging."""
    journal_seconds: float = 0.0
    """Wall time spent writing journal entries (compression, fsync)."""
    merge_failures: int = 0
    """Opportunistic merges that failed (e.g. disk full); the journal kept the episodes."""
    merge_error: str | None = None
    """Message of the last failed merge."""


class EpisodeWriter:
    """Writes episodes into a demonstration file, crash-safely (see the module docstring).

    Open with :meth:`create`, :meth:`append` or :meth:`resume`; then :meth:`commit` each
    finished episode and :meth:`drop` each attempt that gave none, in attempt order; then
    :meth:`close` (or use ``with``). One writer per file at a time (a lock enforces it).
    """

    def __init__(
        self,
        path: Path,
        lock: journal.WriterLock,
        meta: DatasetMetadata,
        *,
        durable: bool,
        merge_overhead: float,
        max_pending: int,
        compression: Compression | None = None,
    ) -> None:
        self._path = path
        self._lock = lock
        self._meta = meta
        self._comp = compression or Compression.parse(meta.compression)
        self._durable = durable
        self._schedule = MergeSchedule(merge_overhead, max_pending)
        self._pending: list[journal.JournalEntry] = []
        self._unsaved_session: str | None = None
        with h5py.File(path, "r") as f:
            self._next_attempt = int(f.attrs["next_attempt"])
            self._episodes = int(f.attrs["total_episodes"])
            self._steps = int(f.attrs["total_steps"])
            # Index of the session record that describes this writer's episodes.
            self._session = int(f[SESSIONS].shape[0]) - 1
        self._closed = False
        self.stats = WriterStats()
        """Counters of this session."""

    # ----------------------------------------------------------------- opening
    @classmethod
    def create(
        cls,
        path: str | Path,
        metadata: DatasetMetadata,
        *,
        overwrite: bool = False,
        compression: str | Compression = "gzip",
        durable: bool = True,
        merge_overhead: float = 0.02,
        max_pending: int = 64,
    ) -> EpisodeWriter:
        """Start a new file at ``path``; an existing file is replaced only with ``overwrite``.

        ``compression``: ``gzip[:level]`` (default level 4), ``lzf`` or ``none``.
        ``durable``: fsync before every rename (safe against power loss, not only kills).
        ``merge_overhead``/``max_pending``: when the journal is merged (``publish`` module).
        """
        path = Path(path)
        check_metadata(metadata)
        check_directory(path)
        comp = Compression.parse(compression)
        if path.exists() and not overwrite:
            raise DatasetExistsError(f"{path}: already exists; not overwriting it")
        lock = journal.WriterLock.acquire(path)
        try:
            journal.clean(lock.directory, keep=[])  # entries of a file this one replaces
            meta = publish_new_file(
                path, metadata, lock.directory, comp, durable=durable, overwrite=overwrite
            )
            return cls(
                path,
                lock,
                meta,
                durable=durable,
                merge_overhead=merge_overhead,
                max_pending=max_pending,
            )
        except BaseException:
            lock.release(remove_directory=True)
            raise

    @classmethod
    def append(
        cls,
        path: str | Path,
        metadata: DatasetMetadata,
        *,
        compression: str | Compression | None = None,
        durable: bool = True,
        merge_overhead: float = 0.02,
        max_pending: int = 64,
    ) -> EpisodeWriter:
        """Add episodes of a new recording to an existing, compatible file.

        Compatible means same schema version, environment id and spaces; otherwise a
        one-line :class:`IncompatibleDatasetError` (or ``SchemaVersionError``) is raised
        and nothing is changed. Attempt indices continue after the file's last one.
        ``compression``: of this session's episodes (None: the file's; HDF5 stores each
        array's filters with it, so readers need not know).
        """
        return cls._open_existing(
            Path(path),
            "append",
            metadata,
            metadata.recording_args,
            durable,
            merge_overhead,
            max_pending,
            compression,
        )

    @classmethod
    def resume(
        cls,
        path: str | Path,
        *,
        recording_args: dict[str, Any] | None = None,
        compression: str | Compression | None = None,
        durable: bool = True,
        merge_overhead: float = 0.02,
        max_pending: int = 64,
    ) -> EpisodeWriter:
        """Continue an interrupted recording at the file's next attempt.

        Episodes an interrupted writer left in the journal are merged first.
        ``recording_args`` (the resuming command's arguments) go to the sessions log;
        ``compression`` as in :meth:`append` (the interrupted session's, to continue it alike).
        """
        return cls._open_existing(
            Path(path), "resume", None, recording_args, durable, merge_overhead, max_pending,
            compression,
        )  # fmt: skip

    @classmethod
    def _open_existing(
        cls,
        path: Path,
        kind: str,
        metadata: DatasetMetadata | None,
        args: Any,
        durable: bool,
        merge_overhead: float,
        max_pending: int,
        compression: str | Compression | None,
    ) -> EpisodeWriter:
        comp = None if compression is None else Compression.parse(compression)
        validate(path)
        with open_dataset(path, include_journal=False) as ds:
            file_meta = ds.metadata
        if metadata is not None:
            check_compatible(path, file_meta, metadata)
        lock = journal.WriterLock.acquire(path)
        try:
            writer = cls(
                path,
                lock,
                file_meta,
                durable=durable,
                merge_overhead=merge_overhead,
                max_pending=max_pending,
                compression=comp,
            )
            # Under the lock nobody else writes here: what the journal holds beyond the
            # file's next attempt was committed by a writer that died; the rest is garbage.
            writer._pending = recover(lock.directory, file_meta.dataset_uuid, writer._next_attempt)
            writer._count_pending()
            session_meta = metadata if metadata is not None else file_meta
            writer._unsaved_session = session_record(kind, session_meta, writer._next_attempt, args)
            writer._session += 1
            writer._merge()
            return writer
        except BaseException:
            lock.release(remove_directory=False)
            raise

    def _count_pending(self) -> None:
        for entry in self._pending:
            if entry.kind == journal.EPISODE:
                with h5py.File(entry.path, "r") as f:
                    self._steps += int(f[journal.EPISODE_GROUP].attrs["total_steps"])
                self._episodes += 1
            self._next_attempt = entry.attempt + 1

    # ------------------------------------------------------------- properties
    @property
    def path(self) -> Path:
        """The dataset file."""
        return self._path

    @property
    def metadata(self) -> DatasetMetadata:
        """The file's metadata."""
        return self._meta

    @property
    def next_attempt(self) -> int:
        """Attempt index the next :meth:`commit` or :meth:`drop` must use."""
        return self._next_attempt

    @property
    def episode_count(self) -> int:
        """Episodes committed in the dataset (all sessions, merged or still journaled)."""
        return self._episodes

    @property
    def pending_count(self) -> int:
        """Journal entries not yet merged into the file."""
        return len(self._pending)

    # ---------------------------------------------------------------- writing
    def _where(self, attempt: int) -> str:
        return f"{self._path}: attempt {attempt}"

    def _safe(self) -> str:
        return f"the {self._episodes} episodes committed before are intact"

    def _take_attempt(self, attempt: int | None) -> int:
        if self._closed:
            raise WriterClosedError(f"{self._path}: the writer is closed")
        if attempt is None:
            return self._next_attempt
        if attempt != self._next_attempt:
            raise AttemptOrderError(
                f"{self._path}: attempt {attempt} out of order; the next attempt is "
                f"{self._next_attempt} (each attempt is committed or dropped exactly once)"
            )
        return attempt

    def commit(self, episode: Episode) -> CommitResult:
        """Durably add ``episode``; when this returns, a crash can no longer lose it.

        Structural problems raise :class:`InvalidEpisodeError` (nothing is written, the
        attempt stays open). An episode with NaN/Inf is not written: its attempt is logged
        as dropped, ``stats.rejected`` counts it, and the result says why.
        """
        attempt = self._take_attempt(episode.attempt)
        where = self._where(attempt)
        seed = check_seed(episode.seed, where)
        arrays = prepare_arrays(episode, self._meta, where)
        bad = non_finite_report(arrays)
        if bad is not None:
            reason = f"rejected: non-finite values in {bad}"
            self.drop(seed, reason, attempt=attempt)
            self.stats.rejected += 1
            return CommitResult(False, None, attempt, reason)
        attrs = episode_attrs(episode, arrays, episode_id=self._episodes, seed=seed,
                              attempt=attempt, session=self._session)  # fmt: skip
        entry = journal.JournalEntry(
            attempt,
            journal.EPISODE,
            journal.entry_path(
                self._lock.directory, self._meta.dataset_uuid, journal.EPISODE, attempt
            ),
        )
        start = time.perf_counter()
        image = episode_file_image(self._meta.dataset_uuid, arrays, attrs, self._comp)

        def write(tmp: Path) -> None:
            tmp.write_bytes(image)
            journal.fault("episode:written")

        try:
            journal.write_atomic(entry.path, write, durable=self._durable)
        except OSError as exc:
            action = f"writing episode {self._episodes} (attempt {attempt})"
            raise write_error(self._path, action, exc, safe=self._safe()) from None
        journal.fault("commit:after-journal")
        self.stats.journal_seconds += time.perf_counter() - start
        self._pending.append(entry)
        self._next_attempt = attempt + 1
        self._episodes += 1
        self._steps += int(attrs["total_steps"])
        self.stats.committed += 1
        self._maybe_merge()
        return CommitResult(True, int(attrs["id"]), attempt, None)

    def drop(self, seed: int, reason: str, *, attempt: int | None = None) -> int:
        """Durably log that an attempt gave no episode (e.g. ``reason="fell"``).

        Returns the attempt index used; ``attempt`` None means :attr:`next_attempt`.
        """
        attempt = self._take_attempt(attempt)
        seed = check_seed(seed, self._where(attempt))
        reason = " ".join(str(reason).split()) or "unspecified"
        record = {"dataset_uuid": self._meta.dataset_uuid, "seed": seed, "reason": reason}
        path = journal.entry_path(
            self._lock.directory, self._meta.dataset_uuid, journal.DROP, attempt
        )
        start = time.perf_counter()
        try:
            journal.write_atomic(
                path, lambda tmp: tmp.write_text(json.dumps(record)), durable=self._durable
            )
        except OSError as exc:
            action = f"logging dropped attempt {attempt}"
            raise write_error(self._path, action, exc, safe=self._safe()) from None
        self.stats.journal_seconds += time.perf_counter() - start
        self._pending.append(journal.JournalEntry(attempt, journal.DROP, path))
        self._next_attempt = attempt + 1
        self.stats.dropped += 1
        self._maybe_merge()
        return attempt

    # ---------------------------------------------------------------- merging
    def _maybe_merge(self) -> None:
        if not self._schedule.due(len(self._pending), self._path):
            return
        try:
            self._merge()
        except DatasetWriteError as exc:
            # What triggered this merge is already committed (journaled); a failed merge
            # only delays moving it into the file. flush() and close() report the error.
            self.stats.merge_failures += 1
            self.stats.merge_error = str(exc)
            self._schedule.failed()  # back off before trying again

    def flush(self) -> None:
        """Merge the journal into the file now, so plain HDF5 readers see every episode."""
        if self._closed:
            raise WriterClosedError(f"{self._path}: the writer is closed")
        self._merge()

    def _merge(self) -> None:
        if not self._pending and self._unsaved_session is None:
            return
        start = time.perf_counter()
        counters = {
            "next_attempt": self._next_attempt,
            "total_episodes": self._episodes,
            "total_steps": self._steps,
        }
        try:
            self._check_free_space()
            publish_merged(self._path, self._lock.directory, self._pending,
                           self._unsaved_session, counters, durable=self._durable)  # fmt: skip
        except OSError as exc:
            raise write_error(
                self._path,
                "merging the journal into the file",
                exc,
                safe=f"{self._safe()} (the newest ones in {self._lock.directory.name})",
            ) from None
        journal.fault("merge:published")
        # Entries below the file's next attempt are stale; deleting them is only tidying.
        delete_merged(self._pending)
        self._pending = []
        self._unsaved_session = None
        seconds = time.perf_counter() - start
        self._schedule.merged(seconds, self._path)
        self.stats.merges += 1
        self.stats.merge_seconds += seconds

    def _check_free_space(self) -> None:
        # A merge needs room for a copy of the file plus the entries. Checking first turns
        # the usual "disk full" into a clean error before HDF5 writes anything.
        pending = sum(e.path.stat().st_size for e in self._pending)
        need = self._path.stat().st_size + int(1.1 * pending) + (1 << 16)
        free = shutil.disk_usage(self._lock.directory).free
        if free < need:
            raise OSError(errno.ENOSPC, f"{need >> 20} MiB needed, {free >> 20} MiB free")

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        """Merge what is pending and release the file. Safe to call twice.

        If the merge fails (disk full), the error is raised and the journal is kept: every
        committed episode survives there and the next ``resume`` merges it.
        """
        if self._closed:
            return
        self._closed = True
        merged = False
        try:
            self._merge()
            merged = True
        finally:
            self._lock.release(remove_directory=merged)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
            return
        # Keep the original exception; a failing merge here must not hide it.
        with contextlib.suppress(DatasetError):
            self.close()
