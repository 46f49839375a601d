"""Reading demonstration files lazily, and validating them.

:func:`open_dataset` reads only attributes when it opens a file; arrays are read when an
:class:`EpisodeView` property is accessed or :meth:`Dataset.iter_steps` reaches them, so
memory stays bounded whatever the file's size.

A dataset is the file plus the entries of its journal (``<file>.journal/``): episodes
committed by a recording that was killed before it could merge them into the file. The
reader shows them too (read-only, nothing is changed), so after a crash it presents
exactly the committed episodes; the next writer that opens the file merges them in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from datasets.store import journal
from datasets.store.checks import check_episode, check_file, expect, open_h5
from datasets.store.checksum import episode_checksum, stored_arrays
from datasets.store.errors import DatasetError, first_line
from datasets.store.schema import (
    ACTIONS,
    DROPPED_ATTEMPTS,
    EPISODE_ATTRS,
    EXECUTED_ACTIONS,
    IMAGES,
    INFOS,
    OBSERVATIONS,
    REWARDS,
    SESSIONS,
    TERMINATIONS,
    TRUNCATIONS,
    DatasetMetadata,
    DroppedAttempt,
    Episode,
    EpisodeInfo,
    parse_episode_name,
)
from datasets.store.summary import DatasetSummary, summarize


@dataclass(frozen=True)
class StepChunk:
    """Consecutive steps from one or more episodes, as NumPy arrays of equal length n."""

    observations: np.ndarray
    """(n, *obs_shape) observation before each action."""
    next_observations: np.ndarray
    """(n, *obs_shape) observation after each action."""
    actions: np.ndarray
    """(n, *act_shape) expert action labels."""
    executed_actions: np.ndarray | None
    """(n, *act_shape) actions applied (equal to ``actions`` where none were stored);
    None unless asked for."""
    rewards: np.ndarray
    """(n,) rewards."""
    terminations: np.ndarray
    """(n,) fall flags."""
    truncations: np.ndarray
    """(n,) time-limit flags."""
    episode_ids: np.ndarray
    """(n,) id of the episode each step comes from."""
    steps: np.ndarray
    """(n,) index of each step within its episode."""


class EpisodeView:
    """One stored episode; each array property reads from the file when accessed."""

    def __init__(self, group: h5py.Group, info: EpisodeInfo) -> None:
        self._group = group
        self.info = info
        """The episode's attributes."""

    @property
    def id(self) -> int:
        """Episode id."""
        return self.info.id

    def dataset(self, key: str) -> h5py.Dataset:
        """The stored h5py dataset, for partial reads like ``view.dataset("actions")[:10]``."""
        return self._group[key]

    @property
    def observations(self) -> np.ndarray:
        """(T+1, *obs_shape) float32."""
        return self._group[OBSERVATIONS][()]

    @property
    def actions(self) -> np.ndarray:
        """(T, *act_shape) float32 expert labels."""
        return self._group[ACTIONS][()]

    @property
    def executed_actions(self) -> np.ndarray | None:
        """(T, *act_shape) applied actions, or None when none were stored."""
        return self._group[EXECUTED_ACTIONS][()] if EXECUTED_ACTIONS in self._group else None

    @property
    def rewards(self) -> np.ndarray:
        """(T,) float64."""
        return self._group[REWARDS][()]

    @property
    def terminations(self) -> np.ndarray:
        """(T,) bool."""
        return self._group[TERMINATIONS][()]

    @property
    def truncations(self) -> np.ndarray:
        """(T,) bool."""
        return self._group[TRUNCATIONS][()]

    def info_keys(self) -> list[str]:
        """Names of the stored ``infos/<key>`` arrays."""
        return sorted(self._group[INFOS]) if INFOS in self._group else []

    def infos(self, key: str) -> np.ndarray:
        """The ``infos/<key>`` array."""
        return self._group[INFOS][key][()]

    @property
    def images(self) -> h5py.Dataset | None:
        """(T+1, H, W, 3) uint8 frames, read lazily: index it (``view.images[i]``) to read
        frames; None when the file has no camera."""
        return self._group.get(IMAGES)

    def load(self) -> Episode:
        """Everything as an in-memory :class:`Episode`."""
        return Episode(
            observations=self.observations,
            actions=self.actions,
            rewards=self.rewards,
            terminations=self.terminations,
            truncations=self.truncations,
            seed=self.info.seed,
            executed_actions=self.executed_actions,
            infos={key: self.infos(key) for key in self.info_keys()},
            images=None if self.images is None else self.images[()],
            attempt=self.info.attempt,
            fell=self.info.fell,
            distance=self.info.distance,
        )

    def checksum_ok(self) -> bool:
        """Recompute the checksum from the stored arrays and compare."""
        try:
            return episode_checksum(stored_arrays(self._group)) == self.info.checksum
        except (OSError, KeyError, ValueError):  # unreadable chunks count as damage
            return False


def _read_drops(f: h5py.File) -> list[DroppedAttempt]:
    rows = f[DROPPED_ATTEMPTS][()]
    return [DroppedAttempt(int(r["attempt"]), int(r["seed"]), h5py_str(r["reason"])) for r in rows]


def h5py_str(value: Any) -> str:
    """A string from h5py, which returns variable-length strings as bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _group_and_info(group: h5py.Group, where: str) -> tuple[h5py.Group, EpisodeInfo]:
    for key in EPISODE_ATTRS:
        expect(key in group.attrs, where, f"missing attribute {key!r}")
    return group, EpisodeInfo.from_attrs(group.attrs)


class _JournalRaceError(Exception):
    """A journal entry vanished while opening: a writer merged it meanwhile."""


class Dataset:
    """An open demonstration dataset; use :func:`open_dataset`. Close it (or use ``with``)."""

    def __init__(self, path: Path, include_journal: bool = True) -> None:
        self.path = path
        """The dataset file."""
        self._files: list[h5py.File] = []
        for _ in range(10):
            try:
                self._load(include_journal)
                return
            except _JournalRaceError:
                self.close()
            except BaseException:
                self.close()
                raise
        raise DatasetError(f"{path}: kept changing while being opened; try again")

    def _load(self, include_journal: bool) -> None:
        main = open_h5(self.path)
        self._files = [main]
        self.metadata: DatasetMetadata = check_file(main, str(self.path))
        """File-level metadata (env, spaces, versions, recording arguments)."""
        self.sessions: list[dict[str, Any]] = [json.loads(h5py_str(s)) for s in main[SESSIONS]]
        """One record per create/append/resume of the file, oldest first."""
        self.dropped_attempts: list[DroppedAttempt] = _read_drops(main)
        """Attempts that gave no episode (fell, rejected, ...), in attempt order."""
        self._groups: dict[int, tuple[h5py.Group, EpisodeInfo]] = {}
        for name in main:
            episode_id = parse_episode_name(name)
            if episode_id is not None:
                self._groups[episode_id] = _group_and_info(main[name], f"{self.path}: {name}")
        self.next_attempt = int(main.attrs["next_attempt"])
        """Attempt index a resumed recording continues at."""
        self.pending_episodes = 0
        """Episodes that are in the journal only (a recording was interrupted)."""
        self.journal_bytes = 0
        """Size of those journal entries on disk."""
        if include_journal:
            self._load_journal()
        self._ids = sorted(self._groups)

    def _load_journal(self) -> None:
        directory = journal.journal_dir(self.path)
        uuid = self.metadata.dataset_uuid
        for entry in journal.scan(directory, uuid, self.next_attempt):
            try:
                if entry.kind == journal.DROP:
                    raw = json.loads(entry.path.read_text())
                    drop = DroppedAttempt(entry.attempt, int(raw["seed"]), str(raw["reason"]))
                    self.dropped_attempts.append(drop)
                else:
                    self.journal_bytes += entry.path.stat().st_size
                    f = h5py.File(entry.path, "r")
                    self._files.append(f)
                    group, info = _group_and_info(f[journal.EPISODE_GROUP], str(entry.path))
                    self._groups[info.id] = (group, info)
                    self.pending_episodes += 1
            except FileNotFoundError:
                raise _JournalRaceError() from None
            except (OSError, ValueError, KeyError) as exc:
                problem = f"unreadable journal entry ({first_line(exc)})"
                raise DatasetError(f"{entry.path}: {problem}") from None
            self.next_attempt = entry.attempt + 1

    def __len__(self) -> int:
        return len(self._ids)

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file handles; views obtained from this dataset become unusable."""
        for f in self._files:
            f.close()
        self._files = []

    def episode_infos(self) -> list[EpisodeInfo]:
        """Attributes of every episode, in id order."""
        return [self._groups[i][1] for i in self._ids]

    def episode_ids(
        self,
        *,
        fell: bool | None = None,
        min_steps: int | None = None,
        max_steps: int | None = None,
    ) -> list[int]:
        """Ids of the episodes that match every given filter, in id order."""
        return [
            info.id
            for info in self.episode_infos()
            if (fell is None or info.fell == fell)
            and (min_steps is None or info.total_steps >= min_steps)
            and (max_steps is None or info.total_steps <= max_steps)
        ]

    def episode(self, episode_id: int) -> EpisodeView:
        """A lazy view of one episode."""
        if episode_id not in self._groups:
            raise KeyError(f"{self.path}: no episode {episode_id} (it has {len(self)})")
        return EpisodeView(*self._groups[episode_id])

    def iter_steps(
        self,
        chunk_size: int = 4096,
        *,
        episode_ids: list[int] | None = None,
        executed_actions: bool = False,
    ) -> Iterator[StepChunk]:
        """Yield steps across episodes in chunks of ``chunk_size`` (the last may be shorter).

        Only one chunk's worth of arrays is in memory at a time.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        parts: list[dict[str, np.ndarray]] = []
        filled = 0
        for episode_id in self._ids if episode_ids is None else episode_ids:
            view = self.episode(episode_id)
            start = 0
            while start < view.info.total_steps:
                stop = min(view.info.total_steps, start + chunk_size - filled)
                parts.append(_read_steps(view, start, stop, executed_actions))
                filled += stop - start
                start = stop
                if filled == chunk_size:
                    yield _join(parts, executed_actions)
                    parts, filled = [], 0
        if parts:
            yield _join(parts, executed_actions)

    def verify(self) -> list[int]:
        """Recompute every episode's checksum; return the ids that do not match."""
        return [i for i in self._ids if not self.episode(i).checksum_ok()]

    def summary(self) -> DatasetSummary:
        """Statistics for ``pipeline inspect``, from one streaming pass over the arrays."""
        return summarize(self)


def _read_steps(view: EpisodeView, start: int, stop: int, executed: bool) -> dict[str, np.ndarray]:
    obs = view.dataset(OBSERVATIONS)[start : stop + 1]
    part = {
        "observations": obs[:-1],
        "next_observations": obs[1:],
        "actions": view.dataset(ACTIONS)[start:stop],
        "rewards": view.dataset(REWARDS)[start:stop],
        "terminations": view.dataset(TERMINATIONS)[start:stop],
        "truncations": view.dataset(TRUNCATIONS)[start:stop],
        "episode_ids": np.full(stop - start, view.id, dtype=np.int64),
        "steps": np.arange(start, stop, dtype=np.int64),
    }
    if executed:
        has = EXECUTED_ACTIONS in view._group
        part["executed_actions"] = (
            view.dataset(EXECUTED_ACTIONS)[start:stop] if has else part["actions"]
        )
    return part


def _join(parts: list[dict[str, np.ndarray]], executed: bool) -> StepChunk:
    joined = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    joined.setdefault("executed_actions", None)
    return StepChunk(**joined)


def open_dataset(path: str | Path, *, include_journal: bool = True) -> Dataset:
    """Open a demonstration file for reading (attributes only; arrays on demand).

    With ``include_journal`` (default) episodes committed by an interrupted recording but
    not yet merged into the file are included. Raises a one-line :class:`DatasetError`
    for a missing, truncated, foreign or other-version file.
    """
    return Dataset(Path(path), include_journal)


def validate(source: str | Path | Dataset) -> int:
    """Check a file's schema and every episode's structure; return the episode count.

    ``source`` is a path or a file already open (checked without opening it again).
    Reads attributes and shapes, not the arrays (``Dataset.verify`` re-hashes those).
    Journal entries of an interrupted recording are checked too. Raises a one-line
    :class:`DatasetError` naming the file and the first problem found.
    """
    if not isinstance(source, Dataset):
        with open_dataset(source) as ds:
            return validate(ds)
    ds, path = source, source.path
    for episode_id in ds._ids:
        group, _ = ds._groups[episode_id]
        where = f"{path}: episode {episode_id} ({group.file.filename}:{group.name})"
        info = check_episode(group, ds.metadata, where)
        expect(info.id == episode_id, where, f"id attribute is {info.id}")
    expect(ds._ids == list(range(len(ds))), str(path), "episode ids are not 0..n-1")
    main = ds._files[0]
    stored = int(main.attrs["total_episodes"])
    expect(stored == len(ds) - ds.pending_episodes, str(path), "total_episodes is wrong")
    return len(ds)
