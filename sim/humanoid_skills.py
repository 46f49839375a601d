"""``sim/HumanoidBackflip-v0`` and ``sim/HumanoidJump-v0``: the DeepMimic humanoid
imitating the other skills whose experts ship in the pybullet wheel."""

from __future__ import annotations

from typing import ClassVar

from sim.motion_imitation import MotionImitationEnv
from sim.skills import BACKFLIP, JUMP, Skill


class HumanoidBackflipEnv(MotionImitationEnv):
    """A humanoid doing standing backflips, one after another (DeepMimic humanoid3d).

    ## Description

    :class:`sim.motion_imitation.MotionImitationEnv` with
    ``pybullet_data/data/motions/humanoid3d_backflip.txt``: a 1.75 s backflip, looped.
    The shipped expert is ``sim.load_expert("humanoid_backflip")``. Spaces, rewards,
    starting state and arguments are the family's (see its docstring). The backflip
    does not travel, so ``info`` has no ``distance``: survival and the pose reward are
    its metrics (the clip lands 1.08 m behind its take-off, so the looped reference
    drifts backwards; that drift is not a goal).

    ## Episode End

    A fall (any link but the feet touching the floor: the hands may not touch down), or
    10 simulated seconds (about 5.7 flips).

    ## Version History

    - v0: first version; reproduces pybullet 3.2.7's ``deep_mimic`` environment with
      ``run_humanoid3d_backflip_args.txt``.
    """

    SKILL: ClassVar[Skill] = BACKFLIP


class HumanoidJumpEnv(MotionImitationEnv):
    """A humanoid doing two-footed broad jumps, one after another (DeepMimic humanoid3d).

    ## Description

    :class:`sim.motion_imitation.MotionImitationEnv` with
    ``pybullet_data/data/motions/humanoid3d_jump.txt``: a 1.77 s jump of about 1.07 m
    forward (+x), looped. The shipped expert is ``sim.load_expert("humanoid_jump")``.
    Spaces, rewards, starting state and arguments are the family's (see its docstring);
    ``info["distance"]`` is the distance jumped along the clip's direction.

    ## Episode End

    A fall, or 10 simulated seconds (about 5.6 jumps).

    ## Version History

    - v0: first version; reproduces pybullet 3.2.7's ``deep_mimic`` environment with
      ``run_humanoid3d_jump_args.txt``.
    """

    SKILL: ClassVar[Skill] = JUMP
