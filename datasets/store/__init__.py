"""The episode store: one HDF5 file per dataset, written crash-safely, read lazily.

This package re-exports nothing: the store's public names (``open_dataset``,
``EpisodeWriter``, ``DatasetError``, ...) are imported from ``datasets``, their one public
home (``from datasets import EpisodeWriter``); code inside ``datasets`` imports them from
the module that defines them. The modules, from the file layout up:

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
