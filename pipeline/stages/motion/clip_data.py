"""A clip as regression data: phases in, joint vectors out, and how far a fit is from it.

A joint vector is the clip frame's joint part (``sim.mocap.joint_vector``): a unit
quaternion (w, x, y, z) per spherical joint, an angle per revolute one. ``q`` and ``-q``
are the same rotation, so each joint's quaternions are made sign-continuous along the
cycle before fitting (a smooth target); errors are measured as rotation angles, which do
not depend on the sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.mocap import JOINT_VECTOR_COLUMNS as JOINT_COLUMNS
from sim.mocap import MotionClip, joint_vector

JOINT_GROUPS = {
    "torso": ("chest", "neck"),
    "legs": ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle"),
    "arms": ("right_shoulder", "right_elbow", "left_shoulder", "left_elbow"),
}
"""Joints by body part, for the per-group fit table."""


@dataclass(frozen=True)
class MotionSamples:
    """Poses of one clip cycle: ``targets[i]`` is the joint vector at ``phases[i]``."""

    phases: np.ndarray
    """(N,) phases in [0, 1]."""
    targets: np.ndarray
    """(N, 36) joint vectors, quaternions sign-continuous along the phases."""


def _sign_continuous(vectors: np.ndarray) -> np.ndarray:
    out = vectors.copy()
    for _, cols, spherical in JOINT_COLUMNS:
        if not spherical:
            continue
        for i in range(1, len(out)):
            if np.dot(out[i, cols], out[i - 1, cols]) < 0.0:
                out[i, cols] = -out[i, cols]
    return out


def key_frames(clip: MotionClip) -> MotionSamples:
    """The captured key frames at their phases k / (frames - 1), the last one at phase 1."""
    frames = np.asarray(clip.frames, dtype=np.float64)
    phases = np.arange(clip.num_frames) / (clip.num_frames - 1)
    targets = frames[:, 8:]
    # Key frames store (w, x, y, z) like a joint vector; normalise any rounding away.
    for _, cols, spherical in JOINT_COLUMNS:
        if spherical:
            targets[:, cols] /= np.linalg.norm(targets[:, cols], axis=1, keepdims=True)
    return MotionSamples(phases, _sign_continuous(targets))


def interpolated(clip: MotionClip, count: int) -> MotionSamples:
    """``count`` evenly spaced phases in [0, 1) of the clip as played (slerp between frames)."""
    phases = np.arange(count) / count
    targets = np.array([joint_vector(clip.pose_at(ph * clip.cycle_time)) for ph in phases])
    return MotionSamples(phases, _sign_continuous(targets))


def joint_errors(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N, joints) error in radians: the angle of the rotation between the (normalised)
    predicted and the target quaternion per spherical joint, the angle difference per
    revolute one."""
    errors = []
    for _, cols, spherical in JOINT_COLUMNS:
        p, t = predicted[:, cols], target[:, cols]
        if spherical:
            p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
            dot = np.clip(np.abs(np.sum(p * t, axis=1)), 0.0, 1.0)
            errors.append(2.0 * np.arccos(dot))
        else:
            errors.append(np.abs(p[:, 0] - t[:, 0]))
    return np.stack(errors, axis=1)


def rmse_table(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Root-mean-square joint error in radians: per joint, per group (over its joints'
    errors) and ``all``."""
    errors = joint_errors(predicted, target)
    names = [name for name, _, _ in JOINT_COLUMNS]
    table = {name: float(np.sqrt(np.mean(errors[:, i] ** 2))) for i, name in enumerate(names)}
    for group, members in JOINT_GROUPS.items():
        idx = [names.index(m) for m in members]
        table[group] = float(np.sqrt(np.mean(errors[:, idx] ** 2)))
    table["all"] = float(np.sqrt(np.mean(errors**2)))
    return table
