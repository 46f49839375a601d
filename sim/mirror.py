"""Left/right mirror maps of the humanoids' observations and actions.

Reflecting a humanoid across its sagittal plane (spanned by its forward and up axes)
gives another physically valid state: the left limbs take the right ones' places and
every lateral component changes sign. For data augmentation, one demonstration step
``(obs, action)`` so yields a second one ``(spec.mirror_obs(obs), spec.mirror_act(action))``;
both take batches and windows, ``(..., dim)``, and ``datasets.training.augment`` calls them.

Both maps are a permutation with signs, ``x_m = x[..., perm] * sign``: ``perm`` swaps each
``left_*`` entry with its ``right_*`` twin (names read from the loaded model), and
``sign`` follows from the reflection ``F = diag(1, .., -1 on the lateral axis, ..)``:

- a position or linear velocity ``v`` becomes ``F v``: only the lateral component flips;
- a rotation (angular velocity, quaternion vector part, axis of an angle-axis pair) is a
  pseudovector and becomes ``-F w``: the lateral component is kept, the other two flip;
  quaternion ``w`` and the angle of an angle-axis pair are kept (``F R F`` is the
  rotation by the same angle about ``-F n``);
- a hinge angle is kept when the twin's axis is ``-F n`` and flips when it is ``F n``
  (read from the joint axes of the loaded model; scaled positions need mirrored limits);
- an Euler angle about axis ``k`` (roll, pitch, yaw) is multiplied by ``(-F)_kk``.

Every model fact used (twin links in mirrored places with mirrored frames, twin axes,
limits) is checked when the spec is built; a model that is not symmetric raises
:class:`~sim.errors.AssetError`.

The walk's observation also carries the clip phase, which no permutation can mirror: the
walk clip is its own mirror image half a cycle later (key frame k + 19 is key frame k
mirrored, exactly, except in the loop's last segment, where the clip does not close: its
last key frame differs from the first by up to 0.24 rad), so a mirrored walk state is the
clip's state at phase + 0.5. :class:`MirrorSpec` has ``phase_index``/``phase_shift`` for
this, and ``mirror_obs`` applies ``phase <- (phase + phase_shift) mod 1`` after the
linear part. With a shift of 0.5, mirroring twice is the identity (up to one float
rounding of the phase).

Mirror raw observations and actions, before any normalization (a z-score whose mean is
not itself symmetric does not commute with the map, and the phase shift assumes [0, 1)).
A walk action's spherical joint (angle, axis) is mirrored with its angle kept; (-angle,
-axis) is the same PD target, and the shipped expert does not use the same of these two
charts on both sides (e.g. its shoulders), so compare walk actions as rotations.

Use ``mirror_spec(env_id)`` or the ``mirror`` property of an unwrapped environment
(``gym.make(id).unwrapped.mirror``). tests/test_mirror.py checks the maps against the
simulators and reports how far mirrored simulations drift apart.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pybullet as p

from sim.assets import pybullet_data_path
from sim.errors import AssetError
from sim.mocap import JOINTS
from sim.quiet import muted_output
from sim.run_robot import FEET, MODEL_FILE, MOTORS
from sim.skills import SKILL_FOR_ENV, SKILLS, WALK, Skill
from sim.walk_character import HUMANOID_URDF, MODEL_SCALE, NUM_LINKS

RUN_ENV_ID = "sim/HumanoidRun-v0"

# Tolerance of the symmetry checks on the rest pose (metres, or unit-vector components);
# the models are symmetric to ~1e-7 (float rounding of their numbers).
_SYMMETRY_TOL = 1e-5
_AXES = "xyz"


def partner_name(name: str) -> str:
    """The left/right twin of a body-part name (``left_knee`` <-> ``right_knee``), or itself."""
    for side, other in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(side):
            return other + name[len(side) :]
    return name


class MirrorPair(NamedTuple):
    """A pair of body parts that mirroring swaps, with the vector indices of each."""

    right: str
    left: str
    right_indices: tuple[int, ...]
    left_indices: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class MirrorSpec:
    """Left/right mirror map of one environment's observations and actions.

    ``mirror_obs(x) = x[..., obs_perm] * obs_sign``, then, if ``phase_index`` is set,
    ``x_m[..., phase_index] = (x_m[..., phase_index] + phase_shift) mod 1``;
    ``mirror_act(a) = a[..., act_perm] * act_sign``. Both are involutions (checked at
    construction). The arrays are read-only.
    """

    env_id: str
    obs_perm: np.ndarray
    """(obs_dim,) int: ``x_m[i] = x[obs_perm[i]] * obs_sign[i]``."""
    obs_sign: np.ndarray
    """(obs_dim,) float, +1 or -1."""
    act_perm: np.ndarray
    """(act_dim,) int: ``a_m[i] = a[act_perm[i]] * act_sign[i]``."""
    act_sign: np.ndarray
    """(act_dim,) float, +1 or -1."""
    obs_names: tuple[str, ...]
    """A label per observation index, ``part.component`` (e.g. ``left_hip.quat.x``)."""
    act_names: tuple[str, ...]
    """A label per action index (e.g. ``right_knee.angle``)."""
    obs_pairs: tuple[MirrorPair, ...]
    """Body parts whose observation entries are swapped, right first."""
    act_pairs: tuple[MirrorPair, ...]
    """Joints whose action entries are swapped, right first."""
    lateral_axis: int
    """Index (0 x, 1 y, 2 z) of the lateral axis of the frame the vectors are expressed in."""
    phase_index: int | None = None
    """Observation index of a cyclic phase in [0, 1) that mirroring shifts, if any."""
    phase_shift: float = 0.0
    """Added (mod 1) to the phase by ``mirror_obs``; 0 or 0.5 keeps the map an involution."""

    def __post_init__(self) -> None:
        for kind in ("obs", "act"):
            perm = np.array(getattr(self, f"{kind}_perm"), dtype=np.int64)
            sign = np.array(getattr(self, f"{kind}_sign"), dtype=np.float64)
            names = getattr(self, f"{kind}_names")
            n = len(perm)
            if sign.shape != (n,) or len(names) != n or sorted(perm.tolist()) != list(range(n)):
                raise ValueError(f"{kind}: perm must be a permutation matching sign and names")
            if not np.all(np.abs(sign) == 1.0):
                raise ValueError(f"{kind}: signs must be +1 or -1")
            # An involution: the twin's twin is the entry itself, with the same sign.
            if np.any(perm[perm] != np.arange(n)) or np.any(sign[perm] != sign):
                raise ValueError(f"{kind}: mirroring twice must be the identity")
            perm.setflags(write=False)
            sign.setflags(write=False)
            object.__setattr__(self, f"{kind}_perm", perm)
            object.__setattr__(self, f"{kind}_sign", sign)
        if self.phase_index is not None:
            if self.obs_perm[self.phase_index] != self.phase_index:
                raise ValueError("the phase entry must map to itself")
            if (2.0 * self.phase_shift) % 1.0 != 0.0:
                raise ValueError("phase_shift must be 0 or 0.5 for mirroring to be an involution")

    @property
    def obs_dim(self) -> int:
        return len(self.obs_perm)

    @property
    def act_dim(self) -> int:
        return len(self.act_perm)

    def mirror_obs(self, x: np.ndarray) -> np.ndarray:
        """Mirrored observation(s), shape (..., obs_dim); floating dtypes are kept."""
        out = _apply(x, self.obs_perm, self.obs_sign, "observation")
        if self.phase_index is not None and self.phase_shift:
            phase = out[..., self.phase_index] + out.dtype.type(self.phase_shift)
            out[..., self.phase_index] = np.mod(phase, 1.0)
        return out

    def mirror_act(self, a: np.ndarray) -> np.ndarray:
        """Mirrored action(s), shape (..., act_dim); floating dtypes are kept."""
        return _apply(a, self.act_perm, self.act_sign, "action")


def _apply(x: np.ndarray, perm: np.ndarray, sign: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 0 or arr.shape[-1] != len(perm):
        raise ValueError(f"{what} must have shape (..., {len(perm)}), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr[..., perm] * sign.astype(arr.dtype)


# -- building specs from the models ------------------------------------------------------


class _Slot(NamedTuple):
    """One vector entry: the body part it belongs to (or ""), what it is, its mirror sign."""

    part: str
    component: str
    sign: float

    @property
    def label(self) -> str:
        return f"{self.part}.{self.component}" if self.part else self.component

    @property
    def mirror_label(self) -> str:
        return f"{partner_name(self.part)}.{self.component}" if self.part else self.component


def _from_slots(slots: list[_Slot]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple]:
    """(perm, sign, names, pairs) of a vector layout: twins are found by label."""
    names = tuple(s.label for s in slots)
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        raise AssetError(f"duplicate entries in a mirror layout: {names}")
    try:
        perm = np.array([index[s.mirror_label] for s in slots])
    except KeyError as exc:
        raise AssetError(f"no mirror twin for layout entry {exc.args[0]!r}") from exc
    parts: dict[str, list[int]] = {}
    for i, s in enumerate(slots):
        parts.setdefault(s.part, []).append(i)
    pairs = tuple(
        MirrorPair(part, partner_name(part), tuple(idx), tuple(parts[partner_name(part)]))
        for part, idx in parts.items()
        if part.startswith("right_")
    )
    return perm, np.array([s.sign for s in slots]), names, pairs


@dataclass(frozen=True)
class _RestModel:
    """A model at its zero pose, base at the origin, unrotated: names, frames and axes."""

    link_names: tuple[str, ...]
    joint_names: tuple[str, ...]
    revolute: tuple[bool, ...]
    positions: np.ndarray
    """(n, 3) link (= joint) frame origins."""
    rotations: np.ndarray
    """(n, 3, 3) link frame orientations."""
    axes: np.ndarray
    """(n, 3) unit joint axes in the world frame (zero for fixed joints)."""
    lower: np.ndarray
    upper: np.ndarray


def _read_rest_model(load: Callable[[int], int]) -> _RestModel:
    client = p.connect(p.DIRECT)
    if client < 0:
        raise RuntimeError("cannot create a PyBullet DIRECT client")
    try:
        with muted_output():  # the URDF loader warns about joints without an axis
            body = load(client)
        p.resetBasePositionAndOrientation(body, [0, 0, 0], [0, 0, 0, 1], physicsClientId=client)
        n = p.getNumJoints(body, physicsClientId=client)
        infos = [p.getJointInfo(body, j, physicsClientId=client) for j in range(n)]
        states = p.getLinkStates(body, range(n), computeForwardKinematics=1, physicsClientId=client)
    finally:
        p.disconnect(physicsClientId=client)
    rotations = np.array([np.reshape(p.getMatrixFromQuaternion(s[5]), (3, 3)) for s in states])
    local = np.array([info[13] for info in infos], dtype=np.float64)
    norms = np.linalg.norm(local, axis=1, keepdims=True)
    axes = np.einsum("nij,nj->ni", rotations, local / np.where(norms > 0, norms, 1.0))
    return _RestModel(
        link_names=tuple(info[12].decode() for info in infos),
        joint_names=tuple(info[1].decode() for info in infos),
        revolute=tuple(info[2] == p.JOINT_REVOLUTE for info in infos),
        positions=np.array([s[4] for s in states]),
        rotations=rotations,
        axes=axes,
        lower=np.array([info[8] for info in infos]),
        upper=np.array([info[9] for info in infos]),
    )


def _twins(names: tuple[str, ...]) -> list[tuple[int, int]]:
    """(index, twin index) for every sided name (both orders) and every self-twin."""
    index = {name: i for i, name in enumerate(names)}
    out = []
    for i, name in enumerate(names):
        twin = partner_name(name)
        if twin not in index:
            raise AssetError(f"'{name}' has no mirror twin '{twin}' in the model")
        out.append((i, index[twin]))
    return out


def _lateral_axis(model: _RestModel, source: str) -> int:
    """The axis along which left and right twins lie apart; checks they are mirror images."""
    # A frame is named by its link or by its joint, whichever says its side: loaders
    # give some links generated names (the run model's 'link0_7' is joint 'right_hip_x').
    names = tuple(
        joint if _sided(joint) else link
        for link, joint in zip(model.link_names, model.joint_names, strict=True)
    )
    twins = _twins(names)
    sided = [(i, k) for i, k in twins if i != k]
    if not sided:
        raise AssetError(f"{source}: no left_/right_ links to mirror")
    spread = sum(np.abs(model.positions[i] - model.positions[k]) for i, k in sided)
    axis = int(np.argmax(spread))
    flip = np.ones(3)
    flip[axis] = -1.0
    for i, k in twins:
        # Twin frames must be mirror images (origin F x, orientation F R F); a frame
        # without a side must be its own mirror image.
        mirrored_rotation = flip[:, None] * model.rotations[i] * flip[None, :]
        if not (
            np.allclose(model.positions[k], flip * model.positions[i], atol=_SYMMETRY_TOL)
            and np.allclose(model.rotations[k], mirrored_rotation, atol=_SYMMETRY_TOL)
        ):
            raise AssetError(
                f"{source}: '{names[i]}' and '{names[k]}' are not mirror images "
                f"across the {_AXES[axis]} = 0 plane"
            )
    return axis


def _sided(name: str) -> bool:
    return partner_name(name) != name


def _hinge_signs(model: _RestModel, lateral: int, source: str) -> dict[str, float]:
    """Per revolute joint: +1 if its twin turns the mirrored way at equal angle, else -1."""
    pseudo = np.ones(3)
    pseudo[[a for a in range(3) if a != lateral]] = -1.0  # -F: rotation axes
    signs = {}
    for i, k in _twins(model.joint_names):
        if not model.revolute[i]:
            continue
        dot = float(model.axes[k] @ (pseudo * model.axes[i]))
        if abs(abs(dot) - 1.0) > _SYMMETRY_TOL:
            raise AssetError(
                f"{source}: axes of '{model.joint_names[i]}' and '{model.joint_names[k]}' "
                "are not mirror images"
            )
        signs[model.joint_names[i]] = float(np.sign(dot))
    return signs


def _reflection_signs(lateral: int) -> tuple[np.ndarray, np.ndarray]:
    """(vector signs F, pseudovector signs -F) per axis for a reflection of ``lateral``."""
    vector = np.ones(3)
    vector[lateral] = -1.0
    return vector, -vector


def _expect_lateral(found: int, expected: int, source: str) -> None:
    # The observation layouts below name their axes; they hold only for this lateral axis.
    if found != expected:
        raise AssetError(
            f"{source}: lateral axis is {_AXES[found]}, the observation layout assumes "
            f"{_AXES[expected]}"
        )


def _load_walk(client: int) -> int:
    # Same loading as sim.walk_character (link order kept: link i is observation link i).
    return p.loadURDF(
        str(pybullet_data_path(HUMANOID_URDF)),
        globalScaling=MODEL_SCALE,
        flags=p.URDF_MAINTAIN_LINK_ORDER,
        physicsClientId=client,
    )


def _deepmimic_spec(skill: Skill) -> MirrorSpec:
    assert skill.mirror_phase_shift is not None  # only symmetric clips are built
    source = HUMANOID_URDF
    model = _read_rest_model(_load_walk)
    if len(model.link_names) != NUM_LINKS:
        raise AssetError(f"{source}: expected {NUM_LINKS} links, found {len(model.link_names)}")
    lateral = _lateral_axis(model, source)
    _expect_lateral(lateral, 2, source)  # heading frame: x forward, y up, z lateral
    vec, rot = _reflection_signs(lateral)
    hinge = _hinge_signs(model, lateral, source)

    obs = [_Slot("", "phase", 1.0), _Slot("", "root_height", 1.0)]
    for link in model.link_names:
        obs += [_Slot(link, f"pos.{a}", vec[i]) for i, a in enumerate(_AXES)]
        obs += [_Slot(link, "quat.w", 1.0)]
        obs += [_Slot(link, f"quat.{a}", rot[i]) for i, a in enumerate(_AXES)]
    for link in model.link_names:
        obs += [_Slot(link, f"linvel.{a}", vec[i]) for i, a in enumerate(_AXES)]
        obs += [_Slot(link, f"angvel.{a}", rot[i]) for i, a in enumerate(_AXES)]

    act = []
    for joint in JOINTS:
        if model.joint_names[joint.link] != joint.name:
            raise AssetError(f"{source}: joint {joint.link} is not '{joint.name}'")
        if joint.spherical:  # angle, then the rotation axis (a pseudovector)
            act += [_Slot(joint.name, "angle", 1.0)]
            act += [_Slot(joint.name, f"axis.{a}", rot[i]) for i, a in enumerate(_AXES)]
        else:
            act += [_Slot(joint.name, "angle", hinge[joint.name])]
    return _build(skill.env_id, obs, act, lateral, phase_index=0,
                  phase_shift=skill.mirror_phase_shift)  # fmt: skip


def _load_run(client: int) -> int:
    # Collision flags aside, as sim.run_robot loads it: the joint numbering is the same.
    return p.loadMJCF(str(pybullet_data_path(MODEL_FILE)), physicsClientId=client)[0]


def _run_spec() -> MirrorSpec:
    source = MODEL_FILE
    model = _read_rest_model(_load_run)
    lateral = _lateral_axis(model, source)
    _expect_lateral(lateral, 1, source)  # torso frame: x forward, y lateral (left), z up
    vec, rot = _reflection_signs(lateral)
    hinge = _hinge_signs(model, lateral, source)
    index = {name: i for i, name in enumerate(model.joint_names)}
    for name, sign in hinge.items():
        # The observation scales positions to [-1, 1] between the limits: a linear mirror
        # needs the twin's limits to be the same (sign +1) or negated and swapped (-1).
        i, k = index[name], index[partner_name(name)]
        lo, hi = model.lower[i], model.upper[i]
        expected = (lo, hi) if sign > 0 else (-hi, -lo)
        if not np.allclose(expected, (model.lower[k], model.upper[k])):
            raise AssetError(f"{source}: limits of '{name}' and its twin are not mirrored")

    obs = [
        _Slot("", "height", 1.0),
        _Slot("", "sin_to_target", rot[2]),  # a yaw angle: about the up axis
        _Slot("", "cos_to_target", 1.0),
        _Slot("", "vel.forward", vec[0]),
        _Slot("", "vel.lateral", vec[1]),
        _Slot("", "vel.up", vec[2]),
        _Slot("", "roll", rot[0]),
        _Slot("", "pitch", rot[1]),
    ]
    # Observation order of the joints: the loader's numbering of the revolute joints.
    for name, revolute in zip(model.joint_names, model.revolute, strict=True):
        if revolute:
            obs += [_Slot(name, "pos", hinge[name]), _Slot(name, "vel", hinge[name])]
    obs += [_Slot(foot, "contact", 1.0) for foot in FEET]
    act = [_Slot(name, "torque", hinge[name]) for name, _ in MOTORS]
    return _build(RUN_ENV_ID, obs, act, lateral)


def _build(
    env_id: str,
    obs: list[_Slot],
    act: list[_Slot],
    lateral: int,
    phase_index: int | None = None,
    phase_shift: float = 0.0,
) -> MirrorSpec:
    obs_perm, obs_sign, obs_names, obs_pairs = _from_slots(obs)
    act_perm, act_sign, act_names, act_pairs = _from_slots(act)
    return MirrorSpec(
        env_id=env_id,
        obs_perm=obs_perm,
        obs_sign=obs_sign,
        act_perm=act_perm,
        act_sign=act_sign,
        obs_names=obs_names,
        act_names=act_names,
        obs_pairs=obs_pairs,
        act_pairs=act_pairs,
        lateral_axis=lateral,
        phase_index=phase_index,
        phase_shift=phase_shift,
    )


_BUILDERS: dict[str, Callable[[], MirrorSpec]] = {
    **{
        s.env_id: functools.partial(_deepmimic_spec, s)
        for s in SKILLS.values()
        if s.mirror_phase_shift is not None  # see sim.skills: the others' clips are not
    },
    RUN_ENV_ID: _run_spec,
}


@functools.cache
def mirror_spec(env_id: str) -> MirrorSpec:
    """The left/right mirror map of ``env_id`` (built once per process from the model)."""
    if env_id not in _BUILDERS:
        why = ("its clip is not its own mirror image" if env_id in SKILL_FOR_ENV
               else f"choose one of {', '.join(_BUILDERS)}")  # fmt: skip
        raise ValueError(f"no mirror map for '{env_id}': {why}")
    return _BUILDERS[env_id]()


def action_names(env_id: str) -> tuple[str, ...]:
    """A label per action entry of ``env_id`` (e.g. ``right_knee.angle``), read from the
    loaded model as the mirror maps are; every DeepMimic skill drives the walk's body."""
    if env_id in SKILL_FOR_ENV:
        env_id = WALK.env_id
    return mirror_spec(env_id).act_names
