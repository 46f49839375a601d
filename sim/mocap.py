"""DeepMimic motion clips: loading, the reference pose at any time, PD targets from actions.

A clip file (``pybullet_data/data/motions/*.txt``) is JSON with ``"Frames"``: one row of
44 numbers per key frame::

    0       frame duration (s)         1-3    root position (y up)
    4-7     root rotation (w, x, y, z) 8-43   the 12 joints of JOINTS, in order:
            a spherical joint is a quaternion (w, x, y, z), a revolute one an angle

The clip loops: every cycle (``cycle_time`` seconds) the root moves on by
``cycle_offset``. Between key frames, positions and angles are interpolated linearly,
rotations by slerp; velocities are the finite differences between the two key frames.

Quaternion arithmetic goes through PyBullet's helpers on purpose: they compute in single
precision, and the reference environment builds its initial states and PD targets with
them, so doing the same keeps our simulation bit-identical to it (tests/reference_walk.py).
The helpers are pure functions and need no physics client.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pybullet as p

from sim.errors import AssetError

FRAME_WIDTH = 44


class Joint(NamedTuple):
    """One actuated joint of the humanoid."""

    name: str
    link: int
    """Joint (= child link) index in humanoid.urdf, loaded with URDF_MAINTAIN_LINK_ORDER."""
    spherical: bool
    """Spherical (quaternion, 3 DoF) or revolute (one angle)."""


# Clip, action and PD-target order: every per-joint list below follows this tuple.
JOINTS = (
    Joint("chest", 1, True),
    Joint("neck", 2, True),
    Joint("right_hip", 3, True),
    Joint("right_knee", 4, False),
    Joint("right_ankle", 5, True),
    Joint("right_shoulder", 6, True),
    Joint("right_elbow", 7, False),
    Joint("left_hip", 9, True),
    Joint("left_knee", 10, False),
    Joint("left_ankle", 11, True),
    Joint("left_shoulder", 12, True),
    Joint("left_elbow", 13, False),
)
JOINT_LINKS = tuple(j.link for j in JOINTS)

# Column where each joint starts in a clip frame, and in an action: a spherical joint
# takes 4 numbers in both (a quaternion in the clip, angle + axis in an action).
_CLIP_COLUMNS = tuple(8 + sum(4 if j.spherical else 1 for j in JOINTS[:i]) for i in range(12))
_ACTION_COLUMNS = tuple(sum(4 if j.spherical else 1 for j in JOINTS[:i]) for i in range(12))
ACTION_DIM = sum(4 if j.spherical else 1 for j in JOINTS)

Rotation = tuple[float, ...]
"""A joint rotation: quaternion (x, y, z, w) for a spherical joint, (angle,) otherwise."""


@dataclass(frozen=True)
class ClipPose:
    """The reference character at one instant (PyBullet conventions, quaternions xyzw)."""

    base_position: tuple[float, float, float]
    base_orientation: tuple[float, float, float, float]
    base_linear_velocity: tuple[float, float, float]
    base_angular_velocity: tuple[float, float, float]
    joint_positions: tuple[Rotation, ...]
    """Per joint of JOINTS."""
    joint_velocities: tuple[tuple[float, ...], ...]
    """Per joint of JOINTS: angular velocity in the parent frame (3) or angle rate (1)."""


def _xyzw(row: list[float], col: int) -> tuple[float, float, float, float]:
    return (row[col + 1], row[col + 2], row[col + 3], row[col])


def _angular_velocity(axis: tuple[float, ...], angle: float, dt: float) -> tuple[float, ...]:
    # (x * angle) / dt, in this order, rounds exactly like the reference.
    return tuple(x * angle / dt for x in axis)


@dataclass(frozen=True)
class _Segment:
    """What is constant between key frame k and k+1: endpoints and velocities."""

    start: list[float]
    end: list[float]
    base_linear_velocity: tuple[float, float, float]
    base_angular_velocity: tuple[float, float, float]
    joint_velocities: tuple[tuple[float, ...], ...]


def _segment(start: list[float], end: list[float], dt: float) -> _Segment:
    lin = tuple((end[i] - start[i]) / dt for i in (1, 2, 3))
    # Root: world-frame rotation from one key frame to the next.
    axis, angle = p.getAxisAngleFromQuaternion(
        p.getDifferenceQuaternion(_xyzw(start, 4), _xyzw(end, 4))
    )
    ang = _angular_velocity(axis, angle, dt)
    joint_vel = []
    for joint, col in zip(JOINTS, _CLIP_COLUMNS, strict=True):
        if joint.spherical:
            # Joints: rotation in the joint's own frame, conj(q_start) * q_end.
            q0 = _xyzw(start, col)
            _, rel = p.multiplyTransforms(
                (0, 0, 0), (-q0[0], -q0[1], -q0[2], q0[3]), (0, 0, 0), _xyzw(end, col)
            )
            axis, angle = p.getAxisAngleFromQuaternion(rel)
            joint_vel.append(_angular_velocity(axis, angle, dt))
        else:
            joint_vel.append(((end[col] - start[col]) / dt,))
    return _Segment(start, end, lin, ang, tuple(joint_vel))  # type: ignore[arg-type]


class MotionClip:
    """A looping motion clip; :meth:`pose_at` gives the reference pose at a clip time."""

    def __init__(self, frames: list[list[float]], source: str = "") -> None:
        if len(frames) < 2 or any(len(f) != FRAME_WIDTH for f in frames):
            raise AssetError(f"{source}: a clip needs >= 2 frames of {FRAME_WIDTH} numbers")
        self.source = source
        self.frames = frames
        self.frame_duration = float(frames[0][0])
        if not self.frame_duration > 0.0:
            raise AssetError(f"{source}: first frame duration must be positive")
        self.num_frames = len(frames)
        self.cycle_time = self.frame_duration * (self.num_frames - 1)
        self.cycle_offset = tuple(frames[-1][i] - frames[0][i] for i in (1, 2, 3))
        # Velocities only depend on the pair of key frames, so they are computed once.
        self._segments = [
            _segment(frames[k], frames[k + 1], self.frame_duration)
            for k in range(self.num_frames - 1)
        ]

    @classmethod
    def load(cls, path: str | Path) -> MotionClip:
        """Read a DeepMimic clip file; raises AssetError naming the file, and the line and
        column where it can, if it is missing or invalid."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise AssetError(f"{path}: cannot read the motion clip ({exc.strerror})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AssetError(
                f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})"
            ) from exc
        rows = data.get("Frames") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise AssetError(f'{path}: no "Frames" list of key frames')
        frames = []
        for k, row in enumerate(rows):
            if (
                not isinstance(row, list)
                or len(row) != FRAME_WIDTH
                or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                    for x in row
                )
            ):
                line, column = _frame_position(text, k)
                raise AssetError(
                    f"{path}: line {line} column {column}: key frame {k} is not "
                    f"{FRAME_WIDTH} finite numbers"
                )
            frames.append([float(x) for x in row])
        return cls(frames, source=str(path))

    @property
    def travel_direction(self) -> np.ndarray:
        """Unit horizontal (x, z) direction of the root's displacement over one cycle
        (+x for a clip that ends where it starts)."""
        d = np.array([self.cycle_offset[0], 0.0, self.cycle_offset[2]])
        norm = np.linalg.norm(d)
        return d / norm if norm > 1e-9 else np.array([1.0, 0.0, 0.0])

    def phase(self, time: float) -> float:
        """Fraction of the cycle elapsed at clip time ``time``, in [0, 1)."""
        phase = math.fmod(time / self.cycle_time, 1.0)
        return phase + 1.0 if phase < 0.0 else phase

    def _locate(self, time: float) -> tuple[int, int, float]:
        """(completed cycles, key frame, fraction towards the next key frame)."""
        cycles = math.floor(time / self.cycle_time)
        frame_time = time - cycles * self.cycle_time
        if frame_time < 0.0:
            frame_time += self.cycle_time
        # Rounding can put frame_time on the cycle's last key frame; stay on the last
        # segment then (fraction ~1) instead of reading past it.
        frame = min(int(frame_time / self.frame_duration), self.num_frames - 2)
        fraction = (frame_time - frame * self.frame_duration) / self.frame_duration
        return cycles, frame, fraction

    def pose_at(self, time: float) -> ClipPose:
        """The reference pose at clip time ``time`` (seconds; the clip loops forever)."""
        cycles, frame, t = self._locate(time)
        seg = self._segments[frame]
        a, b = seg.start, seg.end
        base = tuple(
            a[i] + t * (b[i] - a[i]) + cycles * self.cycle_offset[i - 1] for i in (1, 2, 3)
        )
        base_orn = p.getQuaternionSlerp(_xyzw(a, 4), _xyzw(b, 4), t)
        joints: list[Rotation] = []
        for joint, col in zip(JOINTS, _CLIP_COLUMNS, strict=True):
            if joint.spherical:
                joints.append(p.getQuaternionSlerp(_xyzw(a, col), _xyzw(b, col), t))
            else:
                joints.append((a[col] + t * (b[col] - a[col]),))
        return ClipPose(
            base_position=base,  # type: ignore[arg-type]
            base_orientation=base_orn,
            base_linear_velocity=seg.base_linear_velocity,
            base_angular_velocity=seg.base_angular_velocity,
            joint_positions=tuple(joints),
            joint_velocities=seg.joint_velocities,
        )


def _frame_position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of the ``[`` opening key frame ``index`` of ``"Frames"``."""
    start = text.find('"Frames"')
    depth, seen = 0, -1
    for offset in range(max(start, 0), len(text)):
        char = text[offset]
        if char == "[":
            depth += 1
            if depth == 2:
                seen += 1
                if seen == index:
                    line = text.count("\n", 0, offset) + 1
                    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
        elif char == "]":
            depth -= 1
    return 1, 1


def action_to_targets(action: np.ndarray | list[float]) -> list[Rotation]:
    """PD targets, one per joint of JOINTS, from a raw 36-dim action.

    A spherical joint's four numbers are an angle (radians) and a rotation axis, which
    need not be normalised; a zero axis means the x axis (PyBullet's convention). A
    revolute joint's number is its target angle. Actions are not clipped.
    """
    a = action.tolist() if isinstance(action, np.ndarray) else list(action)
    targets: list[Rotation] = []
    for joint, col in zip(JOINTS, _ACTION_COLUMNS, strict=True):
        if joint.spherical:
            targets.append(p.getQuaternionFromAxisAngle(a[col + 1 : col + 4], a[col]))
        else:
            targets.append((a[col],))
    return targets


JOINT_VECTOR_NAMES = tuple(
    name
    for joint in JOINTS
    for name in (
        [f"{joint.name}.q{c}" for c in "wxyz"] if joint.spherical else [f"{joint.name}.angle"]
    )
)
"""Labels of a joint vector: the clip frame's joint columns (8-43), in JOINTS order."""


JOINT_VECTOR_COLUMNS = tuple(
    (joint.name, slice(col, col + (4 if joint.spherical else 1)), joint.spherical)
    for joint, col in zip(JOINTS, _ACTION_COLUMNS, strict=True)
)
"""(joint name, its columns in a joint vector or an action, spherical?) in JOINTS order."""


def joint_vector(pose: ClipPose) -> np.ndarray:
    """The 36 joint numbers of a pose in the clip's frame layout: a quaternion (w, x, y, z)
    per spherical joint, an angle per revolute one."""
    values: list[float] = []
    for joint, rotation in zip(JOINTS, pose.joint_positions, strict=True):
        if joint.spherical:
            x, y, z, w = rotation
            values += [w, x, y, z]
        else:
            values.append(rotation[0])
    return np.array(values)


def joint_rotations(vector: np.ndarray) -> tuple[Rotation, ...]:
    """Per joint of JOINTS, the rotation of a joint vector (:func:`joint_vector`'s layout),
    quaternions normalized (a learned vector's need not be) and in PyBullet's (x, y, z, w)."""
    v = np.asarray(vector, dtype=np.float64)
    if v.shape != (ACTION_DIM,):
        raise ValueError(f"a joint vector has {ACTION_DIM} numbers, got shape {v.shape}")
    rotations: list[Rotation] = []
    for joint, col in zip(JOINTS, _ACTION_COLUMNS, strict=True):
        if joint.spherical:
            w, x, y, z = v[col : col + 4]
            norm = math.sqrt(w * w + x * x + y * y + z * z) or 1.0
            rotations.append((x / norm, y / norm, z / norm, w / norm))
        else:
            rotations.append((float(v[col]),))
    return tuple(rotations)


def rotations_to_action(rotations: tuple[Rotation, ...]) -> np.ndarray:
    """The raw action whose PD targets are ``rotations`` (the inverse of
    :func:`action_to_targets`): angle and unit axis per spherical joint, the angle per
    revolute one."""
    action: list[float] = []
    for joint, rotation in zip(JOINTS, rotations, strict=True):
        if joint.spherical:
            x, y, z, w = rotation
            sin_half = math.sqrt(x * x + y * y + z * z)
            if sin_half < 1e-12:
                action += [0.0, 1.0, 0.0, 0.0]  # no rotation: any axis; x as PyBullet's
            else:
                action += [2.0 * math.atan2(sin_half, w), x / sin_half, y / sin_half,
                           z / sin_half]  # fmt: skip
        else:
            action.append(rotation[0])
    return np.array(action)
