"""Our Minari interchange format: what maps where, its markers, its errors.

:func:`~datasets.interchange.minari_export.export_minari` turns one of our demonstration
files into a Minari dataset (HDF5 data format) under a Minari datasets root, so
``MINARI_DATASETS_PATH=<root>`` and ``minari.load_dataset(<id>)`` (or
``minari.MinariDataset(<root>/<id>/data)``) read it.
:func:`~datasets.interchange.minari_import.import_minari` reads a Minari dataset with
Minari's own loader and writes one of our files with
:class:`~datasets.store.writer.EpisodeWriter`. Both stream episode by episode. This module
holds what the two directions share.

What maps where (our file -> Minari)::

    episode arrays  observations (T+1), actions (T, the clean expert labels), rewards,
                    terminations, truncations -> the same Minari episode arrays, same dtypes
    executed_actions (DART noise)  -> infos/executed_actions
    infos/<key> (T rows)           -> infos/<key> (T+1 rows: Minari's row 0 is the reset
                                      info, which our files do not keep; it is NaN, or 0
                                      for integer/bool arrays)
    episode attrs   seed -> Minari's episode ``seed``; id, attempt, session, return, fell,
                    distance, checksum -> ``humanoid_imitation/<name>`` episode attributes
                    (Minari's episode metadata returns them as a nested dict)
    file attrs      env id + env kwargs -> ``env_spec`` (the registered spec, kwargs merged);
                    spaces -> ``observation_space``/``action_space``; expert and noise ->
                    ``algorithm_name``; everything (schema version, env kwargs, expert, noise,
                    recording args, sessions, dropped attempts, package versions, exact
                    spaces, compression) -> the ``humanoid_imitation`` metadata entry

An export of ours imports back to the same arrays, seeds, attempts, dropped attempts and
file metadata (checksums match). A foreign dataset needs Box observation and action
spaces; its env id comes from its ``env_spec`` (else ``minari:<dataset id>``), its seeds
from the episodes' ``seed`` (else -1), and numeric infos of T+1 rows lose the reset row.
"""

from __future__ import annotations

from types import ModuleType

from datasets.store.errors import DatasetError, DatasetExistsError, first_line

EXPORT_FORMAT = "humanoid-imitation/minari-export"
"""Value of ``metadata["humanoid_imitation"]["format"]``: marks a dataset as our export."""
EXPORT_VERSION = 1
"""Bumped when the mapping above changes in a way an older importer would misread."""
METADATA_KEY = "humanoid_imitation"
"""Key of our entry in Minari's dataset metadata and prefix of our episode attributes."""
EXECUTED_ACTIONS_INFO = "executed_actions"
"""Info key that carries the executed (noisy) actions, which Minari has no place for."""
IMAGES_INFO = "camera_images"
"""Info key that carries the camera frames (T+1, H, W, 3) uint8: one per observation, so
they fill Minari's T+1 info rows without a placeholder."""
UNKNOWN_SEED = -1
"""Seed stored for imported episodes whose Minari episode has none."""

_EPISODE_ATTRS = ("id", "attempt", "session", "return", "fell", "distance", "checksum")
_MINARI_SPEC = "minari[hdf5]>=0.5.4,<0.6"


class MinariError(DatasetError):
    """A Minari export or import failed; the message names the path and the problem."""


class MinariExistsError(MinariError, DatasetExistsError):
    """The output exists and overwriting was not asked for."""


class MinariSpaceError(MinariError):
    """The Minari dataset has a space our files cannot hold (only Box spaces can)."""


def load_minari() -> ModuleType:
    """The ``minari`` module, or a one-line :class:`MinariError` saying how to install it."""
    # Imported lazily: minari pulls in typer/rich, and only interchange needs it.
    try:
        import minari
    except ImportError as exc:
        raise MinariError(
            f"minari is not installed ({first_line(exc)}); pip install '{_MINARI_SPEC}'"
        ) from None
    return minari
