"""The episode store: one HDF5 file per dataset, written crash-safely, read lazily.

Import the store's public names from here (``from datasets.store import EpisodeWriter``);
``datasets`` re-exports them. The modules, from the file layout up:

- ``schema``: key names, schema version, spaces, episodes and metadata (the file layout);
  ``errors``: the one-line errors every module here raises.
- ``checks``: one-line checks of files, metadata and output paths; ``checksum``: episode
  checksums; ``episodes``: an in-memory episode's arrays and attributes, checked.
- ``journal``: the sidecar journal, atomic renames and the writer lock;
  ``h5write``: building the HDF5 files the writer publishes.
- ``summary``: the statistics of ``pipeline inspect``; ``reader``: the lazy reader and
  validation.
- ``publish``: replacing the file (creation, merging the journal), recovery;
  ``writer``: the crash-safe writer (its docstring explains the crash-safety design).

Training input (``datasets.training``) and interchange formats (``datasets.interchange``)
build on this package; nothing here imports them.
"""

from datasets.store.errors import DatasetError
from datasets.store.reader import Dataset, EpisodeView, StepChunk, open_dataset, validate
from datasets.store.schema import (
    SCHEMA_VERSION,
    CameraSpec,
    Compression,
    DatasetMetadata,
    DroppedAttempt,
    Episode,
    EpisodeInfo,
    SpaceSpec,
)
from datasets.store.summary import DatasetSummary, Stats
from datasets.store.writer import CommitResult, EpisodeWriter, WriterStats

__all__ = [
    "SCHEMA_VERSION",
    "CameraSpec",
    "CommitResult",
    "Compression",
    "Dataset",
    "DatasetError",
    "DatasetMetadata",
    "DatasetSummary",
    "DroppedAttempt",
    "Episode",
    "EpisodeInfo",
    "EpisodeView",
    "EpisodeWriter",
    "SpaceSpec",
    "Stats",
    "StepChunk",
    "WriterStats",
    "open_dataset",
    "validate",
]
