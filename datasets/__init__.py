"""HDF5 episode storage, validation, normalization statistics and input pipelines.

Note: Hugging Face's ``datasets`` package uses the same import name. Install this
project in its own virtual environment; ``pipeline`` refuses to run against the other one.
"""

# Marker checked by ``pipeline`` to detect a shadowing third-party ``datasets`` package.
HUMANOID_IMITATION = True
