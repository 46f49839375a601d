"""Dataset statistics for ``pipeline inspect``, computed in one streaming pass.

Per-dimension observation and action ranges are folded in block by block, so memory
stays at one block whatever the number of episodes.

This module sits below the reader: ``Dataset.summary`` calls :func:`summarize`, which
reads the dataset through the :class:`SummarySource` protocol rather than the reader's
class, so the two modules do not import each other.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from datasets.store.schema import (
    ACTIONS,
    IMAGES,
    OBSERVATIONS,
    Compression,
    DatasetMetadata,
    DroppedAttempt,
    EpisodeInfo,
)

if TYPE_CHECKING:
    import h5py

_BLOCK_ROWS = 4096


class EpisodeArrays(Protocol):
    """One episode's stored arrays, read in slices (``datasets.store.reader.EpisodeView``)."""

    def dataset(self, key: str) -> h5py.Dataset:
        """The stored array ``key``, unread until sliced."""
        ...


class SummarySource(Protocol):
    """What :func:`summarize` reads from an open dataset (``datasets.store.reader.Dataset``)."""

    path: Path
    metadata: DatasetMetadata
    sessions: list[dict[str, Any]]
    dropped_attempts: list[DroppedAttempt]
    next_attempt: int
    pending_episodes: int
    journal_bytes: int

    def episode_infos(self) -> list[EpisodeInfo]:
        """Attributes of every episode, in id order."""
        ...

    def episode(self, episode_id: int) -> EpisodeArrays:
        """A lazy view of one episode."""
        ...


@dataclass(frozen=True)
class Stats:
    """Summary statistics of one per-episode quantity (NaN values left out)."""

    count: int
    """Number of finite values."""
    mean: float
    """Mean (NaN when count is 0)."""
    std: float
    """Population standard deviation."""
    min: float
    """Smallest value."""
    max: float
    """Largest value."""

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        """Statistics of the finite entries of ``values``."""
        data = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
        if not data.size:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(int(data.size), data.mean(), data.std(), data.min(), data.max())


@dataclass(frozen=True)
class DatasetSummary:
    """What ``pipeline inspect`` shows about a dataset."""

    path: str
    """The dataset file."""
    file_bytes: int
    """Size of the file on disk."""
    journal_bytes: int
    """Size of episodes still in the journal (an interrupted recording)."""
    schema_version: int
    """Schema version of the file."""
    env_id: str
    """Environment id."""
    expert_id: str | None
    """Expert that produced the actions."""
    noise_scale: float
    """DART noise scale of the first recording session."""
    compression: str
    """Compression of the arrays: the file's, then any other an appended session chose
    (e.g. ``gzip:4, none``)."""
    created: str
    """UTC creation time."""
    episodes: int
    """Committed episodes."""
    pending_episodes: int
    """Of those, how many are still only in the journal."""
    total_steps: int
    """Steps (actions) over all episodes."""
    falls: int
    """Episodes in which the expert fell (kept with ``--keep-failed``)."""
    survival_rate: float
    """Fraction of episodes without a fall (NaN when there are none)."""
    steps: Stats
    """Episode lengths."""
    returns: Stats
    """Episode returns."""
    distances: Stats
    """Distances walked, metres."""
    dropped: int
    """Attempts that gave no episode."""
    dropped_reasons: dict[str, int]
    """Dropped attempts by reason (text before the first ``:``)."""
    next_attempt: int
    """Attempt index a resumed recording continues at."""
    observation_min: list[float]
    """Per-dimension minimum of the observations."""
    observation_max: list[float]
    """Per-dimension maximum of the observations."""
    action_min: list[float]
    """Per-dimension minimum of the expert actions."""
    action_max: list[float]
    """Per-dimension maximum of the expert actions."""
    recording_args: dict[str, Any]
    """Arguments of the recording that created the file."""
    sessions: int
    """Number of create/append/resume sessions that wrote the file."""
    package_versions: dict[str, str]
    """Package versions at creation."""
    camera: str | None = None
    """The camera of the stored frames, e.g. ``84x84 follow`` (None: no images)."""
    image_bytes: int = 0
    """Bytes the frames take in the file (compressed), over all episodes."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


class _Range:
    """Running per-dimension min and max, fed block by block."""

    def __init__(self) -> None:
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None

    def add(self, block: np.ndarray) -> None:
        if not len(block):
            return
        flat = block.reshape(len(block), -1)
        low, high = flat.min(axis=0), flat.max(axis=0)
        self.low = low if self.low is None else np.minimum(self.low, low)
        self.high = high if self.high is None else np.maximum(self.high, high)

    def lists(self) -> tuple[list[float], list[float]]:
        if self.low is None or self.high is None:
            return [], []
        return self.low.astype(float).tolist(), self.high.astype(float).tolist()


def _compressions(first: str, sessions: list[dict[str, Any]]) -> str:
    """The file's compression and, in order, the others its sessions' arguments name."""
    names = [first]
    for session in sessions:
        chosen = (session.get("recording_args") or {}).get("compression")
        if chosen is not None:
            try:
                name = str(Compression.parse(chosen))
            except ValueError:  # not written by this package's recorder
                name = str(chosen)
            if name not in names:
                names.append(name)
    return ", ".join(names)


def summarize(ds: SummarySource) -> DatasetSummary:
    """Read every episode once, block by block, and gather the statistics."""
    infos = ds.episode_infos()
    obs_range, act_range = _Range(), _Range()
    for info in infos:
        view = ds.episode(info.id)
        for key, ranges in ((OBSERVATIONS, obs_range), (ACTIONS, act_range)):
            data = view.dataset(key)
            for start in range(0, data.shape[0], _BLOCK_ROWS):
                ranges.add(data[start : start + _BLOCK_ROWS])
    image_bytes = 0
    for info in infos if ds.metadata.camera else []:
        # The stored (compressed) size, from the chunk index: no frame is read.
        image_bytes += ds.episode(info.id).dataset(IMAGES).id.get_storage_size()
    falls = sum(info.fell for info in infos)
    reasons = Counter(d.reason.split(":", 1)[0] for d in ds.dropped_attempts)
    obs_min, obs_max = obs_range.lists()
    act_min, act_max = act_range.lists()
    meta = ds.metadata
    return DatasetSummary(
        path=str(ds.path),
        file_bytes=ds.path.stat().st_size,
        journal_bytes=ds.journal_bytes,
        schema_version=meta.schema_version,
        env_id=meta.env_id,
        expert_id=meta.expert_id,
        noise_scale=meta.noise_scale,
        compression=_compressions(meta.compression, ds.sessions),
        created=meta.created,
        episodes=len(infos),
        pending_episodes=ds.pending_episodes,
        total_steps=sum(info.total_steps for info in infos),
        falls=falls,
        survival_rate=(len(infos) - falls) / len(infos) if infos else math.nan,
        steps=Stats.of([float(info.total_steps) for info in infos]),
        returns=Stats.of([info.episode_return for info in infos]),
        distances=Stats.of([info.distance for info in infos]),
        dropped=len(ds.dropped_attempts),
        dropped_reasons=dict(sorted(reasons.items())),
        next_attempt=ds.next_attempt,
        observation_min=obs_min,
        observation_max=obs_max,
        action_min=act_min,
        action_max=act_max,
        recording_args=meta.recording_args,
        sessions=len(ds.sessions),
        package_versions=meta.package_versions,
        camera=meta.camera.describe() if meta.camera else None,
        image_bytes=image_bytes,
    )
