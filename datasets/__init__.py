"""HDF5 episode storage, validation, normalization statistics and input pipelines.

Note: Hugging Face's ``datasets`` package uses the same import name. Install this
project in its own virtual environment; ``pipeline`` refuses to run against the other one.
"""

# Marker checked by ``pipeline`` to detect a shadowing third-party ``datasets`` package.
HUMANOID_IMITATION = True

from datasets.store import (  # noqa: E402  (the marker above must exist even if this fails)
    SCHEMA_VERSION,
    CameraSpec,
    CommitResult,
    Compression,
    Dataset,
    DatasetError,
    DatasetMetadata,
    DatasetSummary,
    DroppedAttempt,
    Episode,
    EpisodeInfo,
    EpisodeView,
    EpisodeWriter,
    SpaceSpec,
    Stats,
    StepChunk,
    WriterStats,
    open_dataset,
    validate,
)

__all__ = [
    "HUMANOID_IMITATION",
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
