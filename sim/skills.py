"""The DeepMimic skills whose experts ship in the pybullet wheel, as data.

One :class:`Skill` per motion-imitation environment: the clip it imitates, the expert
checkpoint that performs it, and what differs between skills (episode length, whether
the skill travels, whether its clip mirrors onto itself). :mod:`sim.motion_imitation`
is the one environment implementation they all share.

The wheel also ships ``humanoid3d_spinkick.ckpt`` (and ``humanoid3d_walk_COMenabled``,
a variant of the walk). Spinkick is not offered: its args file sets nothing that the
walk's does not (only the clip and checkpoint differ), and its expert fails in
pybullet's own DeepMimic environment exactly as in ours (the same falls at the same
times from the same start phases). From phase 0 it tracks the clip for two cycles (pose
reward 0.79, 0.77), then drifts off it (0.48, 0.16, ... 0.01) and stands; from random
start phases it falls in about half the episodes within 3 s. Physics at 600 or 1200 Hz
instead of 240 Hz does not change that. ``benchmarks/bench_experts.py --skill spinkick``
reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Skill:
    """One motion clip with the expert that imitates it."""

    name: str
    """Short name, e.g. ``walk``; the expert is ``humanoid_<name>``."""
    env_id: str
    """Registered gymnasium id, e.g. ``sim/HumanoidWalk-v0``."""
    clip: str
    """Motion clip, relative to ``pybullet_data``."""
    checkpoint: str
    """The expert's TF1 checkpoint prefix, relative to ``pybullet_data``."""
    episode_seconds: float
    """Default simulated seconds per episode."""
    travels: bool
    """Whether distance and speed measure the skill (the root's progress along the
    clip's direction of travel is a goal of the motion, not an artefact of it)."""
    mirror_phase_shift: float | None
    """Phase offset at which the left/right mirror image of the clip matches the clip
    itself (0.5 for a gait: the other leg's step), or None if it never does."""
    summary: str
    """One line for listings."""

    @property
    def expert(self) -> str:
        """Name of the shipped expert, as :func:`sim.load_expert` takes it."""
        return f"humanoid_{self.name}"


def _skill(name: str, env: str, **fields: object) -> Skill:
    return Skill(
        name=name,
        env_id=f"sim/Humanoid{env}-v0",
        clip=f"data/motions/humanoid3d_{name}.txt",
        checkpoint=f"data/policies/humanoid3d/humanoid3d_{name}.ckpt",
        **fields,  # type: ignore[arg-type]
    )


WALK = _skill("walk", "Walk", episode_seconds=20.0, travels=True, mirror_phase_shift=0.5,
              summary="a motion-captured walk, 0.87 m/s")  # fmt: skip
# The backflip and jump clips are performances, not constructed cycles: mirrored, the
# worst link of a frame is a median 11 cm / 29 degrees (backflip) and 8.5 cm / 21 degrees
# (jump) from the clip at the same phase, and further at any other shift (the walk's
# mirror image half a cycle later is exact). A mirrored state would teach a motion the
# reward does not ask for, so they get no mirror map (tests/test_skills.py measures it).
BACKFLIP = _skill(
    "backflip",
    "Backflip",
    episode_seconds=10.0,
    travels=False,
    mirror_phase_shift=None,
    # The clip lands 1.08 m behind its take-off, so the looped reference drifts backwards;
    # that is where the performer landed, not what a backflip is for.
    summary="repeated standing backflips",
)
JUMP = _skill("jump", "Jump", episode_seconds=10.0, travels=True, mirror_phase_shift=None,
              summary="repeated two-footed broad jumps, about 1.07 m each")  # fmt: skip

SKILLS: dict[str, Skill] = {s.name: s for s in (WALK, BACKFLIP, JUMP)}
"""The offered skills by name."""
SKILL_FOR_ENV: dict[str, Skill] = {s.env_id: s for s in SKILLS.values()}
"""The offered skills by environment id."""
