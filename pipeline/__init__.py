"""The pipeline: CLI, configuration, tracking and the record/train/evaluate stages."""

import datasets as _datasets

# ``datasets`` is also the import name of Hugging Face's package; if that one is first on
# the path, everything downstream would fail with confusing errors.
if getattr(_datasets, "HUMANOID_IMITATION", False) is not True:
    raise ImportError(
        f"the 'datasets' package imported from {getattr(_datasets, '__file__', '?')} is not "
        "this project's (Hugging Face 'datasets' shadows it?): install this project into a "
        "dedicated virtual environment (see README)"
    )

from pipeline.core.tensorflow_setup import mute_tensorflow_import

# Before anything imports TensorFlow, here and in every spawned worker (which imports this
# package to unpickle its task): TensorFlow's C++ start-up log is not for the user.
mute_tensorflow_import()
