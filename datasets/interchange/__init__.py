"""Interchange: converting our demonstration files to and from other dataset formats.

Each format gets its modules here, built on the episode store (``datasets.store``) and
independent of the training input (``datasets.training``). Today that is Minari:
``minari_format`` (what maps where, markers, errors), ``minari_export`` and
``minari_import``. Import the public names from this package::

    from datasets.interchange import export_minari, import_minari
"""

from datasets.interchange.minari_export import default_dataset_id, export_minari
from datasets.interchange.minari_format import (
    EXECUTED_ACTIONS_INFO,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    METADATA_KEY,
    UNKNOWN_SEED,
    MinariError,
    MinariExistsError,
    MinariSpaceError,
)
from datasets.interchange.minari_import import import_minari

__all__ = [
    "EXECUTED_ACTIONS_INFO",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "METADATA_KEY",
    "UNKNOWN_SEED",
    "MinariError",
    "MinariExistsError",
    "MinariSpaceError",
    "default_dataset_id",
    "export_minari",
    "import_minari",
]
