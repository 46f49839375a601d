"""DeepMimic's imitation reward: how closely the simulated humanoid follows the clip.

Four terms, each ``exp(-scale * error)`` in (0, 1], compare the simulated character with
the reference (ghost) character at the same clip time::

    pose          exp(-2 * sum_j w_j * angle(q_sim_j, q_ref_j)^2), the root included
    velocity      exp(-0.1 * sum_j w_j * |v_sim_j - v_ref_j|^2)
    end effector  exp(-40 * mean over ankles and wrists of |x_sim - x_ref|^2)
    root          exp(-5 * (|p_sim - p_ref|^2 + 0.1 rot^2 + 0.01 |v|^2 + 0.001 |w|^2))

and the reward is ``(0.5 pose + 0.05 velocity + 0.15 end_effector + 0.2 root) / 0.9``.
The numbers are those of the published DeepMimic code as ported to pybullet.

Two properties of the pybullet port are kept so that the numbers match it:

- The reference joint velocities are those PyBullet reports for the kinematic character,
  which are zero (it is asleep). The velocity term therefore compares the root's angular
  velocity with the clip's and otherwise penalises the simulated joint speeds.
- The root rotation error is ``2 acos(w)`` of ``q_ref * conj(q_sim)`` without choosing the
  shorter of the two arcs, whereas joint errors use the shorter arc.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.walk_character import BodyState

ROOT_WEIGHT = 0.20833
# Per joint of sim.mocap.JOINTS (chest, neck, right hip, knee, ankle, shoulder, elbow,
# left hip, knee, ankle, shoulder, elbow); the right ankle's weight differs from the left's
# in the original too.
JOINT_WEIGHTS = np.array([0.10416, 0.0625, 0.10416, 0.0625, 0.041666666666666671, 0.0625,
                          0.0416, 0.10416, 0.0625, 0.0416, 0.0625, 0.0416])  # fmt: skip
_SPHERICAL_WEIGHTS = JOINT_WEIGHTS[[0, 1, 2, 4, 5, 7, 9, 10]]
_REVOLUTE_WEIGHTS = JOINT_WEIGHTS[[3, 6, 8, 11]]

WEIGHT_POSE, WEIGHT_VELOCITY, WEIGHT_END_EFFECTOR, WEIGHT_ROOT = 0.5, 0.05, 0.15, 0.2
SCALE_POSE, SCALE_VELOCITY, SCALE_END_EFFECTOR, SCALE_ROOT = 2.0, 0.1, 40.0, 5.0
_WEIGHT_SUM = WEIGHT_POSE + WEIGHT_VELOCITY + WEIGHT_END_EFFECTOR + WEIGHT_ROOT


@dataclass(frozen=True)
class RewardTerms:
    """The imitation reward and its four terms."""

    pose: float
    velocity: float
    end_effector: float
    root: float

    @property
    def total(self) -> float:
        weighted = (
            WEIGHT_POSE * self.pose
            + WEIGHT_VELOCITY * self.velocity
            + WEIGHT_END_EFFECTOR * self.end_effector
            + WEIGHT_ROOT * self.root
        )
        return weighted / _WEIGHT_SUM

    def as_info(self) -> dict[str, float]:
        return {
            "reward_pose": self.pose,
            "reward_velocity": self.velocity,
            "reward_end_effector": self.end_effector,
            "reward_root": self.root,
        }


def _squared_norm(v: np.ndarray) -> float:
    return float(np.vdot(v, v))


def imitation_reward(sim: BodyState, ref: BodyState) -> RewardTerms:
    """Reward terms of the simulated state against the reference one."""
    # Small vectors: few numpy calls, since each costs more than the arithmetic.
    qs, qr = sim.base_orientation.tolist(), ref.base_orientation.tolist()
    # w of q_ref * conj(q_sim); not folded onto the shorter arc (see module docstring).
    root_w = qr[3] * qs[3] + qr[0] * qs[0] + qr[1] * qs[1] + qr[2] * qs[2]
    root_rot_err = (2.0 * math.acos(min(max(root_w, -1.0), 1.0))) ** 2
    root_ang_vel_err = _squared_norm(sim.base_angular_velocity - ref.base_angular_velocity)

    a, b = sim.joints.spherical_rotations, ref.joints.spherical_rotations
    # |w| of b * conj(a) is |a . b|: the shorter arc between the two joint rotations.
    joint_angles = 2.0 * np.arccos(np.minimum(np.abs(np.einsum("ij,ij->i", a, b)), 1.0))
    revolute_diff = sim.joints.revolute_angles - ref.joints.revolute_angles
    pose_err = (
        ROOT_WEIGHT * root_rot_err
        + float(_SPHERICAL_WEIGHTS @ (joint_angles * joint_angles))
        + float(_REVOLUTE_WEIGHTS @ (revolute_diff * revolute_diff))
    )

    sph_vel = sim.joints.spherical_velocities - ref.joints.spherical_velocities
    rev_vel = sim.joints.revolute_velocities - ref.joints.revolute_velocities
    vel_err = (
        ROOT_WEIGHT * root_ang_vel_err
        + float(_SPHERICAL_WEIGHTS @ np.einsum("ij,ij->i", sph_vel, sph_vel))
        + float(_REVOLUTE_WEIGHTS @ (rev_vel * rev_vel))
    )

    effectors = sim.end_effectors - ref.end_effectors
    end_eff_err = _squared_norm(effectors) / len(effectors)

    root_pos_err = _squared_norm(sim.base_position - ref.base_position)
    root_vel_err = _squared_norm(sim.base_linear_velocity - ref.base_linear_velocity)
    root_err = root_pos_err + 0.1 * root_rot_err + 0.01 * root_vel_err + 0.001 * root_ang_vel_err

    return RewardTerms(
        pose=math.exp(-SCALE_POSE * pose_err),
        velocity=math.exp(-SCALE_VELOCITY * vel_err),
        end_effector=math.exp(-SCALE_END_EFFECTOR * end_eff_err),
        root=math.exp(-SCALE_ROOT * root_err),
    )
