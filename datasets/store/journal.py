"""The sidecar journal ``<file>.journal/``: durable entries, atomic renames and the lock.

While a recording runs, the directory next to the dataset holds::

    lock                                  flock()ed by the one live writer, holds its pid
    <uuid>-<attempt>.episode.h5           a committed episode not yet merged into the file
    <uuid>-<attempt>.drop.json            a dropped attempt not yet merged
    *.tmp                                 work in progress; garbage once the lock is ours

Every entry appears by ``rename`` of a complete, fsync'ed temporary file, so an entry
that exists is whole. ``uuid`` is the dataset file's random id: entries left behind by
a file that was since overwritten never match and are never merged into the new one.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datasets.store.errors import DatasetLockedError, OutputDirectoryError, first_line

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; run one writer at a time
    fcntl = None  # type: ignore[assignment]

EPISODE = "episode"
DROP = "drop"
_SUFFIX = {EPISODE: ".episode.h5", DROP: ".drop.json"}
_ENTRY = re.compile(r"^([0-9a-f]{32})-(\d{10})\.(episode\.h5|drop\.json)$")
LOCK_NAME = "lock"
EPISODE_GROUP = "episode"
"""Name of the episode group inside an episode entry file."""


def journal_dir(path: Path) -> Path:
    """The journal directory of a dataset file: ``walk.h5`` -> ``walk.h5.journal``."""
    return path.with_name(path.name + ".journal")


def fsync_path(path: Path) -> None:
    """Flush a file's data (or a directory's entries) to stable storage."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        if path.is_dir():  # some platforms cannot open directories; nothing to flush then
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(final: Path) -> Path:
    """A temporary name next to ``final`` (same file system, so rename is atomic)."""
    return final.with_name(f"{final.name}.{os.getpid()}.tmp")


def publish(tmp: Path, final: Path, *, durable: bool, replace: bool = True) -> None:
    """Atomically make the complete file ``tmp`` appear as ``final``.

    With ``replace=False`` an existing ``final`` is never touched (``FileExistsError``):
    ``link`` fails atomically where a check followed by ``rename`` would race.
    """
    if durable:
        fsync_path(tmp)
    if replace:
        os.replace(tmp, final)
    else:
        os.link(tmp, final)
        tmp.unlink()
    if durable:
        fsync_path(final.parent)


def write_atomic(final: Path, write: Callable[[Path], None], *, durable: bool) -> None:
    """Write a file by ``write(tmp)`` and rename it over ``final``; no partial ``final`` ever."""
    tmp = temp_path(final)
    try:
        write(tmp)
        publish(tmp, final, durable=durable)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@dataclass(frozen=True)
class JournalEntry:
    """One durable journal entry."""

    attempt: int
    """Attempt index the entry records."""
    kind: str
    """``episode`` or ``drop``."""
    path: Path
    """Where it lives."""


def entry_path(directory: Path, uuid: str, kind: str, attempt: int) -> Path:
    """File name of an entry; the name alone identifies dataset, attempt and kind."""
    return directory / f"{uuid}-{attempt:010d}{_SUFFIX[kind]}"


def scan(directory: Path, uuid: str, next_attempt: int) -> list[JournalEntry]:
    """Entries of dataset ``uuid`` for attempts ``next_attempt, next_attempt + 1, ...``.

    Only the unbroken run from ``next_attempt`` counts: entries are written one after
    the other, so anything after a gap was never part of a committed sequence.
    """
    found: dict[int, JournalEntry] = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        match = _ENTRY.match(name)
        if match and match.group(1) == uuid:
            kind = EPISODE if match.group(3).startswith(EPISODE) else DROP
            attempt = int(match.group(2))
            found[attempt] = JournalEntry(attempt, kind, directory / name)
    entries = []
    while next_attempt in found:
        entries.append(found[next_attempt])
        next_attempt += 1
    return entries


def clean(directory: Path, keep: list[JournalEntry]) -> None:
    """Remove everything but the lock and ``keep``: temporaries, merged or foreign entries.

    Only safe while holding the lock, when no other process can be writing here.
    """
    keep_names = {e.path.name for e in keep} | {LOCK_NAME}
    for name in os.listdir(directory):
        if name not in keep_names:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                (directory / name).unlink()


class WriterLock:
    """An exclusive ``flock`` on ``<journal>/lock``: one writer per dataset.

    The kernel drops a flock when its process dies, so a SIGKILLed writer never leaves a
    stale lock behind.
    """

    def __init__(self, directory: Path, fd: int | None) -> None:
        self.directory = directory
        self._fd = fd

    @classmethod
    def acquire(cls, dataset: Path) -> WriterLock:
        """Create the journal directory and lock it, or raise a one-line error."""
        directory = journal_dir(dataset)
        lock = directory / LOCK_NAME
        while True:
            try:
                directory.mkdir(exist_ok=True)
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                continue  # a finishing writer removed the directory in between; retry
            except OSError as exc:
                raise OutputDirectoryError(
                    f"{dataset}: cannot create {directory.name} in {dataset.parent}: "
                    f"{exc.strerror or first_line(exc)}"
                ) from exc
            if fcntl is None:
                return cls(directory, fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise DatasetLockedError(
                    f"{dataset}: another process (pid {owner}) is writing this dataset"
                ) from None
            # The holder we waited for may have unlinked the lock file before we locked
            # our handle to it; then our lock guards nothing and we must start over.
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                return cls(directory, fd)
            os.close(fd)

    def release(self, *, remove_directory: bool) -> None:
        """Unlock; with ``remove_directory`` also delete the (then empty) journal."""
        if self._fd is None:
            return
        if remove_directory:
            with contextlib.suppress(OSError):
                (self.directory / LOCK_NAME).unlink()
            with contextlib.suppress(OSError):
                self.directory.rmdir()
        os.close(self._fd)
        self._fd = None


fault_hook: Callable[[str], None] | None = None
"""Test hook, called at named points of commit and merge; crash tests kill the process there."""


def fault(point: str) -> None:
    """Call :data:`fault_hook` (a no-op in normal use)."""
    if fault_hook is not None:
        fault_hook(point)
