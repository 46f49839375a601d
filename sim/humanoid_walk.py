"""``sim/HumanoidWalk-v0``: the DeepMimic humanoid imitating a motion-captured walk."""

from __future__ import annotations

from typing import ClassVar

from sim.motion_imitation import MotionImitationEnv
from sim.skills import WALK, Skill


class HumanoidWalkEnv(MotionImitationEnv):
    """A humanoid that walks by imitating a motion-capture clip (DeepMimic humanoid3d).

    ## Description

    :class:`sim.motion_imitation.MotionImitationEnv` with the walk:
    ``pybullet_data/data/motions/humanoid3d_walk.txt``, a 1.27 s walking cycle, looped,
    heading +x. The shipped expert (``sim.load_expert("humanoid_walk")``) walks about
    17 m in 20 s with a pose reward of about 0.92. Spaces, rewards, starting state,
    episode end and arguments are the family's (see its docstring); ``info["distance"]``
    is the walked distance along +x.

    ## Episode End

    A fall, or 20 simulated seconds (541 actions).

    ## Version History

    - v0: first version; reproduces pybullet 3.2.7's ``deep_mimic`` humanoid3d walk
      (stable PD, 240 Hz physics, ~27 Hz control, imitation reward).
      2026-12-07: contact pairs are sorted (``deterministicOverlappingPairs``), so an
      episode no longer depends on the episodes simulated before it; trajectories differ
      from earlier ones in the last bits after the first contacts.
    """

    SKILL: ClassVar[Skill] = WALK
