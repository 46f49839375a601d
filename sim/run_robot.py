"""The roboschool-style humanoid of ``sim/HumanoidRun-v0`` inside one PyBullet client.

This module owns everything that talks to the physics: the stadium floor, the MJCF
humanoid, the bookkeeping of joints, motors, links and feet, torques, stepping, the
44-dimensional observation and the foot contacts. Rewards, termination, seeding and
the gymnasium API live in :mod:`sim.humanoid_run`.

Observation layout (float32, clipped to +-5)::

    0      torso height above its nominal start height (z - 0.8)
    1, 2   sin, cos of the angle from the torso heading to the walk target
    3-5    0.3 x torso velocity in the heading frame (forward, left, up)
    6, 7   torso roll, pitch
    8-41   per joint (17, model order): position scaled to -1..1 between its
           limits, then 0.1 x angular velocity
    42, 43 right, left foot touching the floor (1.0/0.0), as of the previous step

Every PyBullet call names its client explicitly, so several robots in one process never
share state. All state-reading calls are batched (one call per kind per step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

from sim.assets import pybullet_data_path

MODEL_FILE = "mjcf/humanoid_symmetric.xml"
STADIUM_FILE = "plane_stadium.sdf"

SUBSTEP = 0.0165 / 4
"""Physics time step, seconds."""
SUBSTEPS = 4
"""Physics substeps per control step."""
CONTROL_DT = SUBSTEP * SUBSTEPS
"""Seconds per control step (0.0165); also the scale of the progress potential."""

GRAVITY = 9.8
CONTACT_ERP = 0.9
SOLVER_ITERATIONS = 5
FLOOR_FRICTION = 0.8
FLOOR_RESTITUTION = 0.5

NOMINAL_Z = 0.8
"""Torso height that observation 0 is relative to (and the fall threshold is near)."""
WALK_TARGET_XY = (1e3, 0.0)
"""The point the humanoid runs towards: a kilometre down the +x axis."""
POWER = 0.41
"""Global torque scale; a motor's torque is ``POWER * gear * clip(action, -1, 1)``."""

# (joint, gear) in action order. The action order is defined by name, independently of
# the order in which the loader numbers the joints (which defines the observation order).
MOTORS = (
    ("abdomen_z", 100), ("abdomen_y", 100), ("abdomen_x", 100),
    ("right_hip_x", 100), ("right_hip_z", 100), ("right_hip_y", 300), ("right_knee", 200),
    ("left_hip_x", 100), ("left_hip_z", 100), ("left_hip_y", 300), ("left_knee", 200),
    ("right_shoulder1", 75), ("right_shoulder2", 75), ("right_elbow", 75),
    ("left_shoulder1", 75), ("left_shoulder2", 75), ("left_elbow", 75),
)  # fmt: skip
FEET = ("right_foot", "left_foot")
TORSO = "torso"

OBS_DIM = 8 + 2 * len(MOTORS) + len(FEET)
ACT_DIM = len(MOTORS)
OBS_CLIP = 5.0
# A joint whose scaled position exceeds this counts as "at its limit" in the reward.
AT_LIMIT = 0.99

_LOAD_FLAGS = (
    p.URDF_USE_SELF_COLLISION
    | p.URDF_USE_SELF_COLLISION_EXCLUDE_ALL_PARENTS
    | p.URDF_GOOGLEY_UNDEFINED_COLORS
)


@dataclass(frozen=True)
class RobotReading:
    """What one read of the simulation yields: the observation and the reward inputs."""

    observation: np.ndarray
    """(44,) float32, see the module docstring."""
    joint_speeds: np.ndarray
    """(17,) float32, 0.1 x joint angular velocity, observation (model) order."""
    joints_at_limit: int
    """Number of joints whose scaled position magnitude exceeds 0.99."""
    torso_xyz: tuple[float, float, float]
    """Torso (base) centre of mass, world frame, metres."""
    walk_target_dist: float
    """Horizontal distance from the mean body position to the walk target, metres."""


def connect_direct() -> int:
    """A new headless PyBullet client (the world is built by :class:`RunRobot`)."""
    client = p.connect(p.DIRECT)
    if client < 0:
        raise RuntimeError("cannot create a PyBullet DIRECT client")
    return client


def _configure_empty_world(client: int) -> None:
    """Empty ``client`` and set the physics up as the reference scene expects."""
    p.resetSimulation(physicsClientId=client)
    # Sorted overlapping pairs make contact handling independent of insertion history.
    p.setPhysicsEngineParameter(deterministicOverlappingPairs=1, physicsClientId=client)
    p.setGravity(0, 0, -GRAVITY, physicsClientId=client)
    p.setDefaultContactERP(CONTACT_ERP, physicsClientId=client)
    p.setPhysicsEngineParameter(
        fixedTimeStep=CONTROL_DT,
        numSolverIterations=SOLVER_ITERATIONS,
        numSubSteps=SUBSTEPS,
        physicsClientId=client,
    )


class RunRobot:
    """The stadium and the humanoid in ``client``; every reset rebuilds the world."""

    def __init__(self, client: int) -> None:
        self.client = client
        self._build()
        self._feet_contact = np.zeros(len(FEET), dtype=np.float32)

    # -- loading and bookkeeping -------------------------------------------------------

    def _build(self) -> None:
        # A world rebuilt from nothing (about 6 ms) makes an episode independent of the
        # ones before it. Restoring a saved state is not enough: it keeps the solver's
        # contact manifolds, whose order follows the contact history, and a run episode
        # then departed from its recording after 479 steps.
        _configure_empty_world(self.client)
        self.floor = self._load_stadium()
        self.body = p.loadMJCF(
            str(pybullet_data_path(MODEL_FILE)), flags=_LOAD_FLAGS, physicsClientId=self.client
        )[0]
        self._index_model()
        # Default velocity motors would brake every joint; torque control needs them off.
        self._disable_motors(list(range(self.num_links)))

    def _load_stadium(self) -> int:
        floor = p.loadSDF(str(pybullet_data_path(STADIUM_FILE)), physicsClientId=self.client)[0]
        p.changeDynamics(
            floor,
            -1,
            lateralFriction=FLOOR_FRICTION,
            restitution=FLOOR_RESTITUTION,
            physicsClientId=self.client,
        )
        p.changeVisualShape(floor, -1, rgbaColor=[1, 1, 1, 0.8], physicsClientId=self.client)
        return floor

    def _index_model(self) -> None:
        c, body = self.client, self.body
        self.num_links = p.getNumJoints(body, physicsClientId=c)
        infos = [p.getJointInfo(body, j, physicsClientId=c) for j in range(self.num_links)]
        link_index = {info[12].decode(): info[0] for info in infos}
        actuated = [info for info in infos if info[2] == p.JOINT_REVOLUTE]
        joint_index = {info[1].decode(): info[0] for info in actuated}
        if len(actuated) != ACT_DIM or set(joint_index) != {name for name, _ in MOTORS}:
            raise RuntimeError(f"{MODEL_FILE}: unexpected joints {sorted(joint_index)}")
        # Observation order: the loader's joint numbering.
        self.obs_joints = [info[0] for info in actuated]
        lower = np.array([info[8] for info in actuated])
        upper = np.array([info[9] for info in actuated])
        self._joint_mid = 0.5 * (lower + upper)
        self._joint_range = upper - lower
        # Action order: the motor table, by name.
        self.motor_joints = [joint_index[name] for name, _ in MOTORS]
        self._motor_gain = np.array([gear * POWER for _, gear in MOTORS])
        self.foot_links = [link_index[name] for name in FEET]
        self._foot_slot = {link: i for i, link in enumerate(self.foot_links)}
        self._links = list(range(self.num_links))
        # The mean body position averages every part of the scene: the torso (base),
        # each link, and the static floor at the origin (the reference keeps the floor
        # in the same part list). The floor lowers the mean's magnitude by 30/31, which
        # scales the progress reward, so it is kept. Slot order follows the reference's
        # part list (first link, base, other links, floor) so that float sums agree.
        self._parts_xy = np.zeros((self.num_links + 2, 2))
        floor_xyz, _ = p.getBasePositionAndOrientation(self.floor, physicsClientId=c)
        self._parts_xy[-1] = floor_xyz[:2]
        self._link_slots = np.array([0, *range(2, self.num_links + 1)])
        self._base_slot = 1

    def _disable_motors(self, joints: list[int]) -> None:
        n = len(joints)
        p.setJointMotorControlArray(
            self.body, joints, p.POSITION_CONTROL,
            targetPositions=[0.0] * n, targetVelocities=[0.0] * n,
            positionGains=[0.1] * n, velocityGains=[0.1] * n, forces=[0.0] * n,
            physicsClientId=self.client,
        )  # fmt: skip

    # -- episode control ---------------------------------------------------------------

    def reset(self, joint_positions: np.ndarray) -> None:
        """Back to the loaded pose, with joints (observation order) at ``joint_positions``."""
        self._build()
        c, body = self.client, self.body
        for joint, q in zip(self.obs_joints, joint_positions, strict=True):
            p.resetJointState(
                body, joint, targetValue=float(q), targetVelocity=0.0, physicsClientId=c
            )
        self._disable_motors(self.obs_joints)
        self._feet_contact[:] = 0.0

    def apply_action(self, action: np.ndarray) -> None:
        """Set motor torques from an action in [-1, 1] (action order; clipped here)."""
        clipped = np.clip(action, -1.0, 1.0)
        # The gain is cast to the action's dtype so a float32 action yields exactly the
        # torques the reference computes from it.
        torques = clipped * self._motor_gain.astype(clipped.dtype, copy=False)
        p.setJointMotorControlArray(
            self.body,
            self.motor_joints,
            p.TORQUE_CONTROL,
            forces=torques.tolist(),
            physicsClientId=self.client,
        )

    def push_torso(self, force: list[float]) -> None:
        """Apply a world-frame force at the torso's centre of mass for the next step."""
        xyz, _ = p.getBasePositionAndOrientation(self.body, physicsClientId=self.client)
        p.applyExternalForce(self.body, -1, force, xyz, p.WORLD_FRAME, physicsClientId=self.client)

    def step_physics(self) -> None:
        """Advance one control step (SUBSTEPS physics steps in one call)."""
        p.stepSimulation(physicsClientId=self.client)

    def update_foot_contacts(self) -> None:
        """Record which feet touch the floor; the next observation reports it."""
        self._feet_contact[:] = 0.0
        contacts = p.getContactPoints(
            bodyA=self.body, bodyB=self.floor, physicsClientId=self.client
        )
        for contact in contacts:
            slot = self._foot_slot.get(contact[3])
            if slot is not None and contact[4] == -1:
                self._feet_contact[slot] = 1.0

    def torso_position(self) -> tuple[float, float, float]:
        """Torso (base) centre of mass, world frame."""
        xyz, _ = p.getBasePositionAndOrientation(self.body, physicsClientId=self.client)
        return xyz

    # -- observation -------------------------------------------------------------------

    def read(self) -> RobotReading:
        """Observation and reward inputs of the current simulation state."""
        c, body = self.client, self.body
        joint_states = p.getJointStates(body, self.obs_joints, physicsClientId=c)
        pos = np.array([s[0] for s in joint_states])
        vel = np.array([s[1] for s in joint_states])
        joints = np.empty(2 * ACT_DIM, dtype=np.float32)
        joints[0::2] = 2.0 * (pos - self._joint_mid) / self._joint_range
        joints[1::2] = 0.1 * vel
        joint_speeds = joints[1::2]
        at_limit = int(np.count_nonzero(np.abs(joints[0::2]) > AT_LIMIT))

        torso_xyz, torso_orn = p.getBasePositionAndOrientation(body, physicsClientId=c)
        link_states = p.getLinkStates(body, self._links, physicsClientId=c)
        parts = self._parts_xy
        parts[self._link_slots] = [s[0][:2] for s in link_states]
        parts[self._base_slot] = torso_xyz[:2]
        mean_x, mean_y = parts[:, 0].mean(), parts[:, 1].mean()

        roll, pitch, yaw = p.getEulerFromQuaternion(torso_orn, physicsClientId=c)
        to_target_x = WALK_TARGET_XY[0] - float(mean_x)
        to_target_y = WALK_TARGET_XY[1] - float(mean_y)
        angle_to_target = math.atan2(to_target_y, to_target_x) - yaw
        # Torso velocity rotated by -yaw into the heading frame.
        (vx, vy, vz), _ = p.getBaseVelocity(body, physicsClientId=c)
        cos_yaw, sin_yaw = math.cos(-yaw), math.sin(-yaw)
        forward = cos_yaw * vx - sin_yaw * vy
        lateral = sin_yaw * vx + cos_yaw * vy

        obs = np.empty(OBS_DIM, dtype=np.float32)
        obs[:8] = (torso_xyz[2] - NOMINAL_Z, math.sin(angle_to_target),
                   math.cos(angle_to_target), 0.3 * forward, 0.3 * lateral, 0.3 * vz,
                   roll, pitch)  # fmt: skip
        obs[8:-2] = joints
        obs[-2:] = self._feet_contact
        np.clip(obs, -OBS_CLIP, OBS_CLIP, out=obs)
        return RobotReading(
            observation=obs,
            joint_speeds=joint_speeds,
            joints_at_limit=at_limit,
            torso_xyz=torso_xyz,
            walk_target_dist=math.sqrt(to_target_x * to_target_x + to_target_y * to_target_y),
        )
