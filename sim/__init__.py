"""Gymnasium environments of PyBullet humanoids and the experts that ship with pybullet.

Importing this package registers ``sim/HumanoidWalk-v0`` and ``sim/HumanoidRun-v0``::

    import gymnasium as gym
    import sim

    env = gym.make("sim/HumanoidWalk-v0", start_phase="random")
"""

import ctypes
import os as _os
import sys as _sys

from gymnasium.envs.registration import register, registry

# Neither module imports pybullet, so these may come before the quiet import below.
from sim.errors import AssetError, SimError, UnknownExpertError
from sim.experts import EXPERT_FOR_ENV, MLPExpert, expert_names, load_expert


def _import_pybullet_quietly() -> None:
    """Import pybullet with stdout and stderr muted at the file-descriptor level: its C
    module prints its build time on import, which would pollute every command's (and
    every worker's) output. Python exceptions still propagate after the streams return."""
    if "pybullet" in _sys.modules:
        return
    _sys.stdout.flush()
    _sys.stderr.flush()
    saved = {fd: _os.dup(fd) for fd in (1, 2)}
    devnull = _os.open(_os.devnull, _os.O_WRONLY)
    try:
        for fd in saved:
            _os.dup2(devnull, fd)
        import pybullet  # noqa: F401

        # C stdio may buffer the banner; flush it while the descriptors are muted.
        ctypes.CDLL(None).fflush(None)
    finally:
        for fd, original in saved.items():
            _os.dup2(original, fd)
            _os.close(original)
        _os.close(devnull)


_import_pybullet_quietly()

ENV_IDS = ("sim/HumanoidWalk-v0", "sim/HumanoidRun-v0")

_ENTRY_POINTS = {
    "sim/HumanoidWalk-v0": "sim.humanoid_walk:HumanoidWalkEnv",
    "sim/HumanoidRun-v0": "sim.humanoid_run:HumanoidRunEnv",
}

for _env_id, _entry in _ENTRY_POINTS.items():
    if _env_id not in registry:
        # Episode length is handled inside each env (the walk's limit is in simulated
        # seconds), so no TimeLimit wrapper is added.
        register(id=_env_id, entry_point=_entry)

__all__ = [
    "ENV_IDS",
    "EXPERT_FOR_ENV",
    "AssetError",
    "MLPExpert",
    "SimError",
    "UnknownExpertError",
    "expert_names",
    "load_expert",
]
