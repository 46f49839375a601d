"""Gymnasium environments of PyBullet humanoids and the experts that ship with pybullet.

Importing this package registers ``sim/HumanoidRun-v0`` and the motion-imitation family
``sim/HumanoidWalk-v0``, ``sim/HumanoidBackflip-v0``, ``sim/HumanoidJump-v0``::

    import gymnasium as gym
    import sim

    env = gym.make("sim/HumanoidWalk-v0", start_phase="random")
"""

from gymnasium.envs.registration import register, registry

# None of these imports pybullet, so they may come before the quiet import below.
from sim.errors import AssetError, SimError, UnknownExpertError
from sim.experts import EXPERT_FOR_ENV, MLPExpert, expert_names, load_expert
from sim.quiet import muted_output
from sim.skills import SKILL_FOR_ENV, SKILLS, Skill

# pybullet's C module prints its build time on import, which would pollute every
# command's (and every worker's) output.
with muted_output():
    import pybullet  # noqa: F401

_ENTRY_POINTS = {
    "sim/HumanoidWalk-v0": "sim.humanoid_walk:HumanoidWalkEnv",
    "sim/HumanoidRun-v0": "sim.humanoid_run:HumanoidRunEnv",
    "sim/HumanoidBackflip-v0": "sim.humanoid_skills:HumanoidBackflipEnv",
    "sim/HumanoidJump-v0": "sim.humanoid_skills:HumanoidJumpEnv",
}
ENV_IDS = tuple(_ENTRY_POINTS)
"""Every registered environment, the walk (the default) first."""
MOTION_ENV_IDS = tuple(SKILL_FOR_ENV)
"""The motion-imitation family: start phase and episode length are options of these."""

for _env_id, _entry in _ENTRY_POINTS.items():
    if _env_id not in registry:
        # Episode length is handled inside each env (the walk's limit is in simulated
        # seconds), so no TimeLimit wrapper is added.
        register(id=_env_id, entry_point=_entry)

__all__ = [
    "ENV_IDS",
    "EXPERT_FOR_ENV",
    "MOTION_ENV_IDS",
    "SKILLS",
    "SKILL_FOR_ENV",
    "AssetError",
    "MLPExpert",
    "SimError",
    "Skill",
    "UnknownExpertError",
    "expert_names",
    "load_expert",
]
