"""Test-only access to pybullet's own roboschool humanoid, the reference for ``sim/HumanoidRun-v0``.

``pybullet_envs`` cannot be imported as shipped: its ``__init__`` imports the legacy
``gym`` package and ``pkg_resources``. Here the package is replaced by a stub module that
only carries the right ``__path__`` (so its ``__init__`` never runs), ``gym`` is aliased
to gymnasium while the reference modules import, and every shim is removed from
``sys.modules`` and ``sys.path`` again afterwards so the rest of the test session never
sees them. Product code must never do this: the reference is imported by tests only.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import gymnasium
import gymnasium.spaces
import gymnasium.utils
import gymnasium.utils.seeding
from packaging.version import parse as parse_version

# Top-level module names the reference creates through its own sys.path manipulation.
_REFERENCE_TOP_LEVEL = ("robot_bases", "robot_locomotors", "scene_abstract", "scene_stadium",
                        "env_bases", "gym_locomotion_envs")  # fmt: skip


def _pybullet_envs_dir() -> Path:
    loaded = sys.modules.get("pybullet_envs")
    if loaded is not None and getattr(loaded, "__path__", None):
        # Another test helper may already hold a stub package (possibly without a
        # __spec__, which would make find_spec raise).
        return Path(next(iter(loaded.__path__)))
    # find_spec locates the folder without executing pybullet_envs/__init__.py.
    spec = importlib.util.find_spec("pybullet_envs")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pybullet_envs is not installed (it ships in the pybullet wheel)")
    return Path(next(iter(spec.submodule_search_locations)))


def _shim_modules(envs_dir: Path) -> dict[str, types.ModuleType]:
    package = types.ModuleType("pybullet_envs")
    package.__path__ = [str(envs_dir)]
    package.__spec__ = importlib.machinery.ModuleSpec("pybullet_envs", loader=None, is_package=True)
    package.__spec__.submodule_search_locations = [str(envs_dir)]
    pkg_resources = types.ModuleType("pkg_resources")
    pkg_resources.parse_version = parse_version  # type: ignore[attr-defined]
    return {
        "pybullet_envs": package,
        "gym": gymnasium,
        "gym.spaces": gymnasium.spaces,
        "gym.utils": gymnasium.utils,
        "gym.utils.seeding": gymnasium.utils.seeding,
        "pkg_resources": pkg_resources,
    }


@functools.cache
def reference_env_class() -> type:
    """``HumanoidBulletEnv`` from the installed pybullet_envs, imported through the shims."""
    envs_dir = _pybullet_envs_dir()
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    shims = _shim_modules(envs_dir)
    displaced = {name: sys.modules[name] for name in shims if name in sys.modules}
    sys.modules.update(shims)
    try:
        module = importlib.import_module("pybullet_envs.gym_locomotion_envs")
        env_class = module.HumanoidBulletEnv
    finally:
        sys.path[:] = saved_path
        for name in shims:
            sys.modules.pop(name, None)
        sys.modules.update(displaced)
        added = set(sys.modules) - saved_modules
        for name in added:
            if name.startswith("pybullet_envs.") or name in _REFERENCE_TOP_LEVEL:
                # The classes keep their module globals alive; only the names go away.
                del sys.modules[name]
    return env_class


def make_reference_env() -> Any:
    """A reference HumanoidBulletEnv (old gym API: ``seed``, ``reset() -> obs``, 4-tuple step)."""
    return reference_env_class()()


def reset_reference(env: Any, seed: int) -> Any:
    """Reset the reference so that its joint noise equals ``HumanoidRunEnv.reset(seed=seed)``.

    The reference's very first reset differs from all later ones: it computes the start
    state before adding the stadium floor to its part list (which enters the mean body
    position), and it saves the simulation state only after that reset. So a throwaway
    reset comes first; then the generator is seeded exactly as gymnasium seeds ours.
    """
    if getattr(env, "stateId", -1) < 0:
        env.seed(0)
        env.reset()
    env.seed(seed)
    return env.reset()
