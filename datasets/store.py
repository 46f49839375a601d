"""The episode store in one import: the crash-safe writer, the lazy reader, validation.

``datasets.writer`` explains the crash-safety design; ``datasets.schema`` the file layout.
"""

from datasets.errors import DatasetError
from datasets.reader import Dataset, EpisodeView, StepChunk, open_dataset, validate
from datasets.schema import (
    SCHEMA_VERSION,
    Compression,
    DatasetMetadata,
    DroppedAttempt,
    Episode,
    EpisodeInfo,
    SpaceSpec,
)
from datasets.summary import DatasetSummary, Stats
from datasets.writer import CommitResult, EpisodeWriter, WriterStats

__all__ = [
    "SCHEMA_VERSION",
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
