"""Locate the humanoid assets and expert weights that ship in the pybullet wheel.

Nothing is downloaded or committed: every path resolves inside the installed
``pybullet_data`` / ``pybullet_envs`` packages, and a missing file is reported by name.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sim.errors import AssetError


def _package_dir(package: str) -> Path:
    # find_spec locates the folder without executing the package: pybullet_envs'
    # __init__ imports the legacy ``gym`` package and must never run.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(
            f"package '{package}' not found: install the pybullet wheel (pip install pybullet)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def pybullet_data_path(relative: str) -> Path:
    """Absolute path of ``relative`` inside ``pybullet_data``; raises AssetError if missing."""
    return _existing(_package_dir("pybullet_data") / relative)


def pybullet_envs_path(relative: str) -> Path:
    """Absolute path of ``relative`` inside ``pybullet_envs`` (read as data, never imported)."""
    return _existing(_package_dir("pybullet_envs") / relative)


def _existing(path: Path) -> Path:
    if not path.exists():
        raise AssetError(f"{path}: file missing from the installed pybullet wheel")
    return path


def checkpoint_path(relative: str) -> Path:
    """Path prefix of a TF checkpoint (``X.ckpt``) whose ``.index`` file must exist."""
    prefix = _package_dir("pybullet_data") / relative
    _existing(prefix.with_name(prefix.name + ".index"))
    return prefix
