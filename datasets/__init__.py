"""HDF5 episode storage, validation, normalization statistics and input pipelines.

This package is the one public home of the episode store's names
(``from datasets import open_dataset, EpisodeWriter, DatasetError``). Its sub-packages:
``store`` (the crash-safe HDF5 store these names come from), ``training`` (what a fit
loop reads) and ``interchange`` (other dataset formats, e.g. Minari).

Note: Hugging Face's ``datasets`` package uses the same import name. Install this
project in its own virtual environment; ``pipeline`` refuses to run against the other one.
"""

# Marker checked by ``pipeline`` to detect a shadowing third-party ``datasets`` package.
HUMANOID_IMITATION = True

# The episode store's public names; ``datasets.store`` itself re-exports nothing.
# (noqa E402: the marker above must exist even if these imports fail.)
from datasets.store.errors import DatasetError  # noqa: E402
from datasets.store.reader import (  # noqa: E402
    Dataset,
    EpisodeView,
    StepChunk,
    open_dataset,
    validate,
)
from datasets.store.schema import (  # noqa: E402
    SCHEMA_VERSION,
    CameraSpec,
    Compression,
    DatasetMetadata,
    DroppedAttempt,
    Episode,
    EpisodeInfo,
    SpaceSpec,
)
from datasets.store.summary import DatasetSummary, Stats  # noqa: E402
from datasets.store.writer import CommitResult, EpisodeWriter, WriterStats  # noqa: E402

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
