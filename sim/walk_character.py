"""The simulated DeepMimic humanoid of ``sim/HumanoidWalk-v0`` inside one PyBullet client.

This module owns everything that talks to the physics: the y-up scene with its floor,
the simulated character (stable PD control, fall detection), the invisible kinematic
"ghost" that shows the reference pose for the reward, and the 197-dim observation.
Timing, rewards and the gymnasium API live in :mod:`sim.humanoid_walk` and
:mod:`sim.walk_reward`.

Observation layout (float64 here, float32 in the env). Vectors and orientations are
expressed in the character's heading frame: world axes turned about y (up) so that x
points along the root's x axis projected on the floor::

    0          phase of the motion clip, [0, 1)
    1          root height (y) above the floor
    2-106      per link 0..14: centre-of-mass position relative to the root (3), then
               orientation (w, x, y, z; w >= 0)
    107-196    per link 0..14: linear velocity (3), angular velocity (3)

Every PyBullet call names its client explicitly, so several characters in one process
never share state; state reads are batched (one call per kind per read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

from sim.assets import pybullet_data_path
from sim.mocap import JOINT_LINKS, JOINTS, ClipPose, Rotation
from sim.quiet import muted_output

HUMANOID_URDF = "humanoid/humanoid.urdf"
FLOOR_URDF = "plane_implicit.urdf"
MODEL_SCALE = 0.25
TICK = 1.0 / 240.0
"""Physics time step, seconds."""
GRAVITY = 9.8
SOLVER_ITERATIONS = 10
FRICTION = 0.9

NUM_LINKS = 15
OBS_DIM = 2 + NUM_LINKS * 7 + NUM_LINKS * 6
# Per joint of JOINTS: stable-PD gains and torque limits (N m), DeepMimic's humanoid3d.
KP = (1000, 100, 500, 500, 400, 400, 300, 500, 500, 400, 400, 300)
KD = (100, 10, 50, 50, 40, 40, 30, 50, 50, 40, 40, 30)
MAX_FORCE = (200, 50, 200, 150, 90, 100, 60, 200, 150, 90, 100, 60)
CHEST_LINK = 1
"""Link index of the chest (the torso a push hits); 0 is the root."""
FALL_LINKS = frozenset((0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14))
"""Links that end the episode when they touch the floor (all but the feet 5 and 11)."""
END_EFFECTORS = (5, 8, 11, 14)
"""Ankles and wrists: right ankle, right wrist, left ankle, left wrist."""

_SIM_FLAGS = (
    p.URDF_MAINTAIN_LINK_ORDER
    | p.URDF_USE_SELF_COLLISION
    | p.URDF_USE_SELF_COLLISION_EXCLUDE_ALL_PARENTS
)
_SLEEPING = (
    p.ACTIVATION_STATE_SLEEP
    | p.ACTIVATION_STATE_ENABLE_SLEEPING
    | p.ACTIVATION_STATE_DISABLE_WAKEUP
)
_SPHERICAL = [i for i, j in enumerate(JOINTS) if j.spherical]
_REVOLUTE = [i for i, j in enumerate(JOINTS) if not j.spherical]


def _flat_index(sizes: list[int], picks: list[int]) -> np.ndarray:
    """Indices into the concatenation of per-joint tuples of ``sizes``, for joints ``picks``."""
    starts = np.cumsum([0, *sizes])
    return np.concatenate([np.arange(starts[i], starts[i + 1]) for i in picks])


# Joint states arrive as one tuple per joint; these pick spherical / revolute entries out
# of the flattened positions (4 or 1 per joint) and velocities (3 or 1 per joint).
_POS_SPH = _flat_index([4 if j.spherical else 1 for j in JOINTS], _SPHERICAL).reshape(-1, 4)
_POS_REV = _flat_index([4 if j.spherical else 1 for j in JOINTS], _REVOLUTE)
_VEL_SPH = _flat_index([3 if j.spherical else 1 for j in JOINTS], _SPHERICAL).reshape(-1, 3)
_VEL_REV = _flat_index([3 if j.spherical else 1 for j in JOINTS], _REVOLUTE)


@dataclass(frozen=True)
class JointReading:
    """Joint positions and velocities of a character, split by joint kind (JOINTS order)."""

    spherical_rotations: np.ndarray
    """(8, 4) quaternions (x, y, z, w) of the spherical joints."""
    revolute_angles: np.ndarray
    """(4,) angles of the revolute joints."""
    spherical_velocities: np.ndarray
    """(8, 3) angular velocities of the spherical joints."""
    revolute_velocities: np.ndarray
    """(4,) angle rates of the revolute joints."""


@dataclass(frozen=True)
class BodyState:
    """What the imitation reward compares, for a simulated or reference character."""

    base_position: np.ndarray
    base_orientation: np.ndarray
    """(4,) quaternion (x, y, z, w)."""
    base_linear_velocity: np.ndarray
    base_angular_velocity: np.ndarray
    joints: JointReading
    end_effectors: np.ndarray
    """(4, 3) centre-of-mass positions of END_EFFECTORS."""


@dataclass(frozen=True)
class CharacterReading:
    """One read of the simulated character (world frame, y up)."""

    body: BodyState
    links: np.ndarray
    """(15, 13) per link: COM position (3), orientation xyzw (4), linear and angular velocity."""


def connect_scene() -> tuple[int, int]:
    """A new headless PyBullet client with the y-up floor scene; returns (client, floor)."""
    client = p.connect(p.DIRECT)
    if client < 0:
        raise RuntimeError("cannot create a PyBullet DIRECT client")
    # The floor plane's normal is z; a rotation by -90 degrees about x makes it y-up.
    z_to_y = p.getQuaternionFromEuler([-math.pi * 0.5, 0.0, 0.0])
    floor = p.loadURDF(
        str(pybullet_data_path(FLOOR_URDF)),
        [0, 0, 0],
        z_to_y,
        useMaximalCoordinates=True,
        physicsClientId=client,
    )
    p.setGravity(0, -GRAVITY, 0, physicsClientId=client)
    p.setPhysicsEngineParameter(numSolverIterations=SOLVER_ITERATIONS, physicsClientId=client)
    # Sorted overlapping pairs: without them the order of contact pairs, and so the
    # solver's result in the last bits, depends on the contacts of earlier episodes
    # (restoring the pristine state does not reset the pair cache); the walk amplified
    # that into different DAgger aggregates from the same seeds on one machine.
    p.setPhysicsEngineParameter(deterministicOverlappingPairs=1, physicsClientId=client)
    p.changeDynamics(floor, -1, lateralFriction=FRICTION, physicsClientId=client)
    return client, floor


def finish_scene(client: int) -> None:
    """Time step settings, applied after loading the characters as the reference does."""
    p.setTimeStep(TICK, physicsClientId=client)
    p.setPhysicsEngineParameter(numSubSteps=1, physicsClientId=client)


def _read_joints(body: int, client: int) -> JointReading:
    states = p.getJointStatesMultiDof(body, JOINT_LINKS, physicsClientId=client)
    pos = np.array([x for s in states for x in s[0]])
    vel = np.array([x for s in states for x in s[1]])
    return JointReading(pos[_POS_SPH], pos[_POS_REV], vel[_VEL_SPH], vel[_VEL_REV])


def _load_bodies(urdf: str, client: int) -> tuple[int, int]:
    """Load the simulated character and its reference ghost."""
    body = p.loadURDF(
        urdf,
        [0, 0.889540259, 0],
        globalScaling=MODEL_SCALE,
        useFixedBase=False,
        flags=_SIM_FLAGS,
        physicsClientId=client,
    )
    # The ghost is a fixed-base copy posed kinematically; it must neither collide nor
    # be simulated (asleep), nor be seen (alpha 0).
    ghost = p.loadURDF(
        urdf,
        [0, 0.85, 0],
        globalScaling=MODEL_SCALE,
        useFixedBase=True,
        flags=p.URDF_MAINTAIN_LINK_ORDER,
        physicsClientId=client,
    )
    return body, ghost


class WalkCharacter:
    """The simulated humanoid and its invisible reference ghost, loaded into ``client``."""

    def __init__(self, client: int, floor: int) -> None:
        self.client = client
        self.floor = floor
        urdf = str(pybullet_data_path(HUMANOID_URDF))
        # The URDF has joints without an axis element; pybullet warns about each of them
        # on every load, which says nothing a user can act on.
        with muted_output():
            self.body, self.ghost = _load_bodies(urdf, client)
        for link in range(-1, NUM_LINKS):
            p.changeDynamics(self.body, link, lateralFriction=FRICTION, physicsClientId=client)
        p.changeDynamics(self.body, -1, linearDamping=0, angularDamping=0, physicsClientId=client)
        for link in range(-1, NUM_LINKS):
            p.setCollisionFilterGroupMask(
                self.ghost,
                link,
                collisionFilterGroup=0,
                collisionFilterMask=0,
                physicsClientId=client,
            )
            p.changeDynamics(self.ghost, link, activationState=_SLEEPING, physicsClientId=client)
            p.changeVisualShape(self.ghost, link, rgbaColor=[1, 1, 1, 0], physicsClientId=client)
        self._disable_default_motors()
        self._pd_args = {
            "controlMode": p.STABLE_PD_CONTROL,
            "targetVelocities": [[0.0, 0.0, 0.0] if j.spherical else [0.0] for j in JOINTS],
            "forces": [
                [float(f)] * (3 if j.spherical else 1)
                for j, f in zip(JOINTS, MAX_FORCE, strict=True)
            ],
            "positionGains": [float(k) for k in KP],
            "velocityGains": [float(k) for k in KD],
            "physicsClientId": client,
        }

    def _disable_default_motors(self) -> None:
        # URDF joints come with velocity motors that would brake them; zero force turns
        # them off (stable PD then drives every joint, one tick at a time).
        for link in JOINT_LINKS:
            p.setJointMotorControl2(
                self.body,
                link,
                p.POSITION_CONTROL,
                targetPosition=0,
                positionGain=0,
                targetVelocity=0,
                force=0,
                physicsClientId=self.client,
            )
            p.setJointMotorControlMultiDof(
                self.body,
                link,
                p.POSITION_CONTROL,
                targetPosition=[0, 0, 0, 1],
                targetVelocity=[0, 0, 0],
                positionGain=0,
                velocityGain=1,
                force=[0, 0, 0],
                physicsClientId=self.client,
            )

    # -- control ----------------------------------------------------------------------

    def reset(self, pose: ClipPose) -> None:
        """Put the simulated character in ``pose``, velocities included."""
        c, body = self.client, self.body
        p.resetBasePositionAndOrientation(
            body, pose.base_position, pose.base_orientation, physicsClientId=c
        )
        p.resetBaseVelocity(
            body, pose.base_linear_velocity, pose.base_angular_velocity, physicsClientId=c
        )
        # The per-joint sequences must be lists: PyBullet crashes on a tuple of tuples.
        p.resetJointStatesMultiDof(
            body,
            JOINT_LINKS,
            list(pose.joint_positions),
            list(pose.joint_velocities),
            physicsClientId=c,
        )

    def step(self, targets: list[Rotation]) -> None:
        """One physics tick with stable-PD targets (one per joint of JOINTS).

        PyBullet applies a stable-PD command for one tick only, so it is sent every tick.
        """
        p.setJointMotorControlMultiDofArray(
            self.body, JOINT_LINKS, targetPositions=targets, **self._pd_args
        )
        p.stepSimulation(physicsClientId=self.client)

    def push_chest(self, force: list[float]) -> None:
        """Apply a world-frame force at the chest's centre of mass for the next tick."""
        state = p.getLinkState(self.body, CHEST_LINK, physicsClientId=self.client)
        p.applyExternalForce(self.body, CHEST_LINK, force, state[0], p.WORLD_FRAME,
                             physicsClientId=self.client)  # fmt: skip

    def fell(self) -> bool:
        """Whether a link other than a foot touches the floor."""
        contacts = p.getContactPoints(
            bodyA=self.body, bodyB=self.floor, physicsClientId=self.client
        )
        return any(c[3] in FALL_LINKS for c in contacts)

    # -- reading ----------------------------------------------------------------------

    def root_position(self) -> tuple[float, float, float]:
        pos, _ = p.getBasePositionAndOrientation(self.body, physicsClientId=self.client)
        return pos

    def read(self) -> CharacterReading:
        c, body = self.client, self.body
        pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=c)
        lin, ang = p.getBaseVelocity(body, physicsClientId=c)
        states = p.getLinkStates(
            body,
            range(NUM_LINKS),
            computeLinkVelocity=1,
            computeForwardKinematics=1,
            physicsClientId=c,
        )
        links = np.array([s[0] + s[1] + s[6] + s[7] for s in states])
        state = BodyState(
            np.array(pos),
            np.array(orn),
            np.array(lin),
            np.array(ang),
            _read_joints(body, c),
            links[END_EFFECTORS, 0:3],
        )
        return CharacterReading(state, links)

    def pose_ghost(self, pose: ClipPose) -> BodyState:
        """Pose the ghost as ``pose``; returns the reference state the reward compares with.

        Positions are read back from PyBullet (which normalises the quaternions) so the
        reward compares exactly what the reference implementation compares. Joint
        velocities are zero: the reference reads them from its sleeping kinematic
        character, where PyBullet reports zero.
        """
        c, ghost = self.client, self.ghost
        p.resetBasePositionAndOrientation(
            ghost, pose.base_position, pose.base_orientation, physicsClientId=c
        )
        p.resetJointStatesMultiDof(
            ghost, JOINT_LINKS, list(pose.joint_positions), physicsClientId=c
        )
        pos, orn = p.getBasePositionAndOrientation(ghost, physicsClientId=c)
        states = p.getLinkStates(
            ghost, END_EFFECTORS, computeForwardKinematics=1, physicsClientId=c
        )
        joints = _read_joints(ghost, c)
        resting = JointReading(
            joints.spherical_rotations,
            joints.revolute_angles,
            np.zeros_like(joints.spherical_velocities),
            np.zeros_like(joints.revolute_velocities),
        )
        return BodyState(
            np.array(pos),
            np.array(orn),
            np.array(pose.base_linear_velocity),
            np.array(pose.base_angular_velocity),
            resting,
            np.array([s[0] for s in states]),
        )


def observation(reading: CharacterReading, phase: float) -> np.ndarray:
    """The 197-dim state of the module docstring, float64."""
    base = reading.body
    qx, qy, qz, qw = base.base_orientation
    # Heading: the root's x axis projected on the floor; rotating by -heading about y
    # brings it onto the world x axis.
    forward_x = 1.0 - 2.0 * (qy * qy + qz * qz)
    forward_z = 2.0 * (qx * qz - qw * qy)
    heading = math.atan2(-forward_z, forward_x)
    cos_h, sin_h = math.cos(-heading), math.sin(-heading)
    rot = np.array([[cos_h, 0.0, sin_h], [0.0, 1.0, 0.0], [-sin_h, 0.0, cos_h]])
    half_s, half_c = math.sin(-0.5 * heading), math.cos(-0.5 * heading)

    links = reading.links
    out = np.empty(OBS_DIM)
    out[0] = phase
    out[1] = base.base_position[1]
    pose = out[2 : 2 + 7 * NUM_LINKS].reshape(NUM_LINKS, 7)
    pose[:, 0:3] = (links[:, 0:3] - base.base_position) @ rot.T
    # Heading quaternion (0, half_s, 0, half_c) times each link quaternion, as (w, x, y, z).
    x, y, z, w = links[:, 3], links[:, 4], links[:, 5], links[:, 6]
    quat = pose[:, 3:7]
    quat[:, 0] = half_c * w - half_s * y
    quat[:, 1] = half_c * x + half_s * z
    quat[:, 2] = half_c * y + half_s * w
    quat[:, 3] = half_c * z - half_s * x
    quat[quat[:, 0] < 0.0] *= -1.0
    vel = out[2 + 7 * NUM_LINKS :].reshape(NUM_LINKS, 6)
    vel[:, 0:3] = links[:, 7:10] @ rot.T
    vel[:, 3:6] = links[:, 10:13] @ rot.T
    return out
