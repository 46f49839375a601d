"""The pipeline, from the top down (pyproject's import contract keeps the order):

- :mod:`.cli`: the commands (parse, call, print);
- :mod:`.workflows`: the quickstart, tune and the report, which run algorithms and stages;
- :mod:`.algorithms`: the learning algorithms (behaviour cloning, DAgger, final-fit
  selection, reward fine-tuning with PPO) with their typed configs and the one
  training-config resolution;
- :mod:`.stages`: record, evaluate, compare, visualize, export and the motion lab;
- building blocks: :mod:`.reports`, :mod:`.rollout` and :mod:`.training`,
  :mod:`.tracking`, :mod:`.core`.
"""

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
