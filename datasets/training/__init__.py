"""Training input: what a fit loop reads from the episode store.

Built on ``datasets.store`` and independent of ``datasets.interchange``. One module per
tool, imported by its own path (this package re-exports nothing, so importing one tool does
not load the others):

- ``splits``: train/validation splits by episode id;
- ``stats``: streaming normalization statistics of the training split;
- ``windows``: observation history windows for temporal policies;
- ``augment``: augmentation functions with an explicit RNG;
- ``epochs``: one shuffled, augmented epoch as NumPy batches, streamed from the file;
- ``tfdata``: those epochs as a ``tf.data`` pipeline (TensorFlow is imported lazily).
"""
