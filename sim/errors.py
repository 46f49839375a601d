"""Errors raised by the simulation package.

Every error here carries a message meant to be shown to a user as one line, so the
CLI can print it without a traceback.
"""


class SimError(Exception):
    """Base class for user-facing errors of the simulation package."""


class AssetError(SimError):
    """A file that must ship in the installed pybullet wheel is missing or not as expected."""


class UnknownExpertError(SimError):
    """No expert is registered under the requested name."""
