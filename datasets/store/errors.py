"""Errors raised by the episode store.

Every error carries a one-line message that names the file and what is wrong, so the CLI
can print it as is (no traceback) and exit with status 2.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path


class DatasetError(Exception):
    """Base class of every user-facing error of the ``datasets`` package."""


class DatasetNotFoundError(DatasetError):
    """The dataset file does not exist."""


class NotHDF5Error(DatasetError):
    """The path exists but is not an HDF5 file (no HDF5 signature, empty, a directory)."""


class TruncatedFileError(DatasetError):
    """The HDF5 file is shorter than its superblock says (an interrupted copy or download)."""


class SchemaError(DatasetError):
    """The file is HDF5 but lacks an attribute, dataset or shape this schema requires."""


class SchemaVersionError(SchemaError):
    """The file was written with another schema version than this code reads and writes."""


class IncompatibleDatasetError(DatasetError):
    """Appending to a file recorded for another environment, other spaces or schema."""


class DatasetExistsError(DatasetError):
    """The output file exists and overwriting was not asked for."""


class DatasetLockedError(DatasetError):
    """Another live process is writing the same dataset."""


class OutputDirectoryError(DatasetError):
    """The directory that should hold the file does not exist or is not writable."""


class InvalidEpisodeError(DatasetError):
    """An episode given to the writer has wrong shapes or dtypes (a bug in the caller)."""


class AttemptOrderError(DatasetError):
    """An attempt was committed or dropped out of order (it would repeat or skip one)."""


class WriterClosedError(DatasetError):
    """The writer was used after :meth:`EpisodeWriter.close`."""


class DatasetWriteError(DatasetError):
    """Writing failed (I/O error); the committed file is left as it was."""


class DiskFullError(DatasetWriteError):
    """Writing failed because the file system is full or over quota."""


_ERRNO_IN_MESSAGE = re.compile(r"errno = (\d+)")


def os_error_code(exc: BaseException) -> int | None:
    """The errno of ``exc``; HDF5 errors only carry it inside their message text."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return code
    found = _ERRNO_IN_MESSAGE.search(str(exc))
    return int(found.group(1)) if found else None


def write_error(path: str | Path, action: str, exc: BaseException, *, safe: str) -> DatasetError:
    """Turn an ``OSError`` raised while ``action`` into a one-line :class:`DatasetWriteError`.

    ``safe`` tells the user what is still intact (e.g. "the file still holds 12 episodes").
    """
    code = os_error_code(exc)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"{path}: disk full while {action}; {safe}")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DatasetWriteError(f"{path}: permission denied while {action}; {safe}")
    reason = os.strerror(code) if code else first_line(exc)
    return DatasetWriteError(f"{path}: write failed while {action} ({reason}); {safe}")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (HDF5 messages can run over several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
