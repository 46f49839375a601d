"""HDF5 writing primitives of the writer: new files, journal episode files, merges.

None of these functions ever writes into a published dataset file: they produce new
files (under temporary names) or fill a private copy that ``datasets.store.publish``
renames into place.

HDF5 must never see a failing write. Measured here: after ``ENOSPC`` inside an h5py
write, HDF5 could not close the file (its metadata cache stayed dirty) and a later h5py
call, on another file, crashed the process with a segmentation fault. So small files
(an episode, an empty dataset) are built in memory and written with plain file I/O, and
the merge writes through :class:`FailSafeFile`, which hides an I/O error from HDF5 and
reports it after HDF5 has closed the file normally.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from datasets.store import journal
from datasets.store.schema import (
    DROPPED_ATTEMPTS,
    DROPPED_DTYPE,
    IMAGES,
    SESSIONS,
    Compression,
    DatasetMetadata,
    episode_name,
    package_versions,
    utc_now,
)


def session_record(kind: str, meta: DatasetMetadata, first_attempt: int, args: Any) -> str:
    """JSON line for the ``sessions`` log: who wrote which attempts, with what settings."""
    return json.dumps(
        {
            "kind": kind,
            "time": utc_now(),
            "first_attempt": first_attempt,
            "expert_id": meta.expert_id,
            "noise_scale": meta.noise_scale,
            "env_kwargs": meta.env_kwargs,
            "recording_args": args,
            "package_versions": package_versions(),
        },
        sort_keys=True,
        default=str,
    )


def append_rows(dataset: h5py.Dataset, rows: list[Any]) -> None:
    """Append rows to a resizable 1-D dataset."""
    start = dataset.shape[0]
    dataset.resize((start + len(rows),))
    dataset[start:] = np.array(rows, dtype=dataset.dtype)


def new_file_image(meta: DatasetMetadata, session: str) -> bytes:
    """Bytes of an empty dataset file: metadata, empty logs, one session record."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs.update(meta.to_attrs())
        f.attrs.update({"next_attempt": 0, "total_episodes": 0, "total_steps": 0})
        f.create_dataset(
            DROPPED_ATTEMPTS, shape=(0,), maxshape=(None,), chunks=(256,), dtype=DROPPED_DTYPE
        )
        f.create_dataset(
            SESSIONS, shape=(0,), maxshape=(None,), chunks=(64,), dtype=h5py.string_dtype()
        )
        append_rows(f[SESSIONS], [session])
    return buffer.getvalue()


def episode_file_image(
    uuid_hex: str, arrays: dict[str, np.ndarray], attrs: dict[str, Any], comp: Compression
) -> bytes:
    """Bytes of a journal entry file holding one episode group."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs.update({"dataset_uuid": uuid_hex, "attempt": attrs["attempt"]})
        group = f.create_group(journal.EPISODE_GROUP)
        for key, array in arrays.items():
            rows = 1 if key == IMAGES else None  # a frame reads alone (lazy training input)
            kwargs = comp.dataset_kwargs(array.shape, array.dtype, rows)
            group.create_dataset(key, data=array, **kwargs)
        group.attrs.update(attrs)
        # The commit marker goes last: a group with it has all its arrays and attributes.
        group.attrs["committed"] = True
    return buffer.getvalue()


class FailSafeFile(io.RawIOBase):
    """A file for h5py's file-object driver whose writes never fail as far as HDF5 knows.

    The first ``OSError`` is kept in :attr:`error`; from then on writes go to an
    in-memory overlay that reads see, so HDF5 works on and closes cleanly. The caller
    must check :attr:`error` afterwards and discard the file if it is set.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open(path, "r+b", buffering=0)  # noqa: SIM115  (closed in close())
        self.error: OSError | None = None
        """The first write error, if any."""
        self._overlay: list[tuple[int, bytes]] = []

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer: Any) -> int:
        start = self._file.tell()
        view = memoryview(buffer).cast("B")
        count = self._file.readinto(view) or 0
        if not self._overlay:
            return count
        view[count:] = bytes(len(view) - count)
        end = start + len(view)
        for offset, data in self._overlay:  # later writes win: apply in order
            low, high = max(offset, start), min(offset + len(data), end)
            if low < high:
                view[low - start : high - start] = data[low - offset : high - offset]
                count = max(count, high - start)
        self._file.seek(start + count)
        return count

    def write(self, data: Any) -> int:
        payload = bytes(data)
        start = self._file.tell()
        if self.error is None:
            try:
                written = 0
                while written < len(payload):  # raw writes may be partial
                    written += self._file.write(payload[written:]) or 0
                return len(payload)
            except OSError as exc:
                self.error = exc
        self._overlay.append((start, payload))
        self._file.seek(start + len(payload))
        return len(payload)

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self._file.truncate(size)
            except OSError as exc:
                self.error = exc
        return self.tell() if size is None else size

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def merge_into(
    copy: Path,
    entries: list[journal.JournalEntry],
    session: str | None,
    counters: dict[str, int],
) -> None:
    """Append journal ``entries`` (and a session record) to ``copy``, a copy of the file.

    ``counters`` are the root attributes ``next_attempt``, ``total_episodes`` and
    ``total_steps`` after the merge. Raises the first I/O error once HDF5 is done.
    """
    with FailSafeFile(copy) as raw:
        with h5py.File(raw, "r+") as f:
            drops = []
            for entry in entries:
                if entry.kind == journal.DROP:
                    record = json.loads(entry.path.read_text())
                    drops.append((entry.attempt, int(record["seed"]), str(record["reason"])))
                    continue
                with h5py.File(entry.path, "r") as source:
                    group = source[journal.EPISODE_GROUP]
                    # H5Ocopy moves the compressed chunks as they are, without recompressing.
                    f.copy(group, f, name=episode_name(int(group.attrs["id"])))
            if drops:
                append_rows(f[DROPPED_ATTEMPTS], drops)
            if session is not None:
                append_rows(f[SESSIONS], [session])
            f.attrs.update(counters)
            journal.fault("merge:appended")
        if raw.error is not None:
            raise raw.error
