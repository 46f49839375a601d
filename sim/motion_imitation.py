"""The DeepMimic humanoid imitating a motion clip: one environment for every skill.

:class:`MotionImitationEnv` is parameterized by a :class:`sim.skills.Skill` (clip,
episode length, whether distance is a metric); ``sim/HumanoidWalk-v0``,
``sim/HumanoidBackflip-v0`` and ``sim/HumanoidJump-v0`` are its registered instances
(:mod:`sim.humanoid_walk`, :mod:`sim.humanoid_skills`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pybullet as p
from gymnasium import spaces

from sim.assets import pybullet_data_path
from sim.camera import FollowCamera, FollowCameraEnv, paint_links, view_yaw
from sim.mirror import MirrorSpec, mirror_spec
from sim.mocap import ACTION_DIM, ClipPose, MotionClip, action_to_targets
from sim.push import Push, PushPlan
from sim.skills import WALK, Skill
from sim.walk_character import (
    TICK,
    WalkCharacter,
    connect_scene,
    finish_scene,
    observation,
)
from sim.walk_reward import RewardTerms, imitation_reward

TICKS_PER_SECOND = 240
_TORSO, _RIGHT, _LEFT = (1.0, 0.5, 0.1, 1.0), (0.85, 0.1, 0.1, 1.0), (1.0, 0.8, 0.1, 1.0)
RENDER_COLOURS = {
    **dict.fromkeys((0, 1, 2), _TORSO),  # root, chest, neck (head)
    **dict.fromkeys(range(3, 9), _RIGHT),  # right hip ... right wrist
    **dict.fromkeys(range(9, 15), _LEFT),  # left hip ... left wrist
}
"""Link colours in videos: the URDF's white humanoid was hard to see on the grey and blue
floor; orange, with right limbs red and left limbs yellow, shows the gait at a glance."""
CONTROL_PERIOD = 1.0 / 30.0
"""A new action is taken once the clock has passed the previous one's start + 1/30 s."""

# Per action dimension, in sim.mocap.JOINTS order: (angle, axis x, y, z) for a spherical
# joint, an angle for a revolute one. DeepMimic's bounds (cCtCtrlUtil::BuildBoundsPD*).
ACTION_LOW = np.array([
    -4.8, -1, -1, -1, -4.0, -1, -1, -1, -7.78, -1, -1, -1, -7.85, -6.28, -1, -1, -1,
    -12.56, -1, -1, -1, -4.71, -7.78, -1, -1, -1, -7.85, -6.28, -1, -1, -1, -8.46, -1, -1,
    -1, -4.71,
], dtype=np.float32)  # fmt: skip
ACTION_HIGH = np.array([
    4.8, 1, 1, 1, 4.0, 1, 1, 1, 8.78, 1, 1, 1, 4.71, 6.28, 1, 1, 1, 12.56, 1, 1, 1, 7.85,
    8.78, 1, 1, 1, 4.71, 6.28, 1, 1, 1, 10.1, 1, 1, 1, 7.85,
], dtype=np.float32)  # fmt: skip
# The bounds the reference gym wrapper meant to declare: phase, root height, link poses
# (positions within a few metres of the root, quaternions), velocities.
OBS_HIGH = np.array([1.0, 100.0] + [4.0] * 105 + [500.0] * 90, dtype=np.float32)
OBS_LOW = np.concatenate([[0.0], -OBS_HIGH[1:]]).astype(np.float32)
# DeepMimic's normalisation of actions for learning: a_norm = (a + ACTION_OFFSET) * ACTION_SCALE.
ACTION_OFFSET = np.array([
    0, 0, 0, -0.2, 0, 0, 0, -0.2, 0, 0, 0, -0.2, 1.57, 0, 0, 0, -0.2, 0, 0, 0, -0.2, -1.57,
    0, 0, 0, -0.2, 1.57, 0, 0, 0, -0.2, 0, 0, 0, -0.2, -1.57,
])  # fmt: skip
ACTION_SCALE = np.array([
    0.20833333333333, 1, 1, 1, 0.25, 1, 1, 1, 0.12077294685990, 1, 1, 1, 0.159235668789,
    0.159235668789, 1, 1, 1, 0.079617834394, 1, 1, 1, 0.159235668789, 0.120772946859, 1, 1,
    1, 0.159235668789, 0.159235668789, 1, 1, 1, 0.107758620689, 1, 1, 1, 0.159235668789,
])  # fmt: skip


PUSH_EARLIEST_S = 3.0
"""A push without a time comes within one gait cycle from here: after the start-up
transients (the expert's falls from bad start phases come at 1.7-2.2 s)."""


class MotionImitationEnv(FollowCameraEnv):
    """The DeepMimic humanoid imitating one skill's motion-capture clip.

    ## Description

    The DeepMimic humanoid (``pybullet_data/humanoid/humanoid.urdf`` at scale 0.25: a
    root, chest, neck, two arms and two legs; 8 spherical and 4 revolute joints) on a
    flat floor in a y-up world, simulated headless in its own PyBullet client. Each
    joint is driven towards the action's target by PyBullet's stable PD controller. The
    reward measures how closely the humanoid follows the skill's clip
    (``pybullet_data/data/motions/humanoid3d_<skill>.txt``, looped: each cycle the
    reference moves on by the clip's root displacement). Dynamics, observation, timing
    and reward reproduce pybullet's ``deep_mimic`` environment loaded with the same
    clip; the tests compare them step by step. Each skill's expert ships in the wheel
    (``sim.load_expert("humanoid_<skill>")``).

    ## Action Space

    ``Box(ACTION_LOW, ACTION_HIGH, (36,), float32)``: PD targets in
    :data:`sim.mocap.JOINTS` order (chest, neck, right hip, knee, ankle, shoulder, elbow,
    left hip, knee, ankle, shoulder, elbow). A spherical joint takes 4 numbers, an angle
    (radians) and a rotation axis (need not be normalised; a zero axis means x); a
    revolute joint takes its target angle. The bounds are DeepMimic's, but actions are
    applied **unclipped**, as in the reference: the experts' actions sometimes leave the
    box. Non-finite actions raise ``ValueError``. ``ACTION_OFFSET`` and ``ACTION_SCALE``
    give DeepMimic's normalisation ``(a + offset) * scale``, for learners.

    ## Observation Space

    ``Box(OBS_LOW, OBS_HIGH, (197,), float32)``, with bounds [0, 1] for the phase, +-100
    for the root height, +-4 for link poses and +-500 for velocities: the clip phase, the
    root height, then for each of the 15 links its centre-of-mass position relative to
    the root and its orientation (w, x, y, z with w >= 0), then each link's linear and
    angular velocity, all in the root's heading frame (see :mod:`sim.walk_character`).

    ## Rewards

    DeepMimic's imitation reward in (0, 1] against the clip at the same time (see
    :mod:`sim.walk_reward`): ``(0.5 pose + 0.05 velocity + 0.15 end_effector + 0.2 root)
    / 0.9``. ``info`` holds the terms as ``reward_pose``, ``reward_velocity``,
    ``reward_end_effector`` and ``reward_root``. The humanoid is never re-synchronised
    with the clip, so the end-effector and root terms decay as it drifts; the pose term,
    survival time and, for a skill that travels, ``distance`` are the metrics.
    As in the reference, the velocity term compares the root's angular velocity with the
    clip's but the joints' velocities with zero (its kinematic character reports zero).

    ## Starting State

    The humanoid starts in the clip's pose and velocities at phase ``start_phase``
    (``"random"``: uniform in [0, 1) from ``self.np_random``; ``reset(options=
    {"start_phase": x})`` overrides it for one episode; the reference draws k/1000, k in
    0..1000). The simulation is restored from a snapshot at every reset, so
    ``reset(seed=s)`` gives the same episode whatever ran before.

    ## Episode End

    - Termination: a fall, i.e. a link other than the feet (links 0-4, 6-10, 12-14)
      touches the floor, checked after every physics tick (``info["fell"]``).
    - Truncation: ``episode_seconds`` of simulated time since reset (the skill's default;
      the reference stops at clip time 20 s, i.e. earlier after a random start phase).

    Physics runs at 240 Hz. An action is held until the clock passes 1/30 s after it was
    first applied, i.e. for 8 or 9 ticks (about 27 actions per simulated second, as in
    the reference's control loop). ``info`` (from ``reset`` and every ``step``) holds the
    four reward terms, ``fell``, ``sim_time`` (seconds since reset), ``phase`` and, for a
    skill that travels, ``distance`` (metres the root moved along the clip's direction
    of travel since reset).

    ## Arguments

    ```python
    gym.make("sim/Humanoid<Skill>-v0", render_mode=None, start_phase=0.0,
             episode_seconds=<skill default>, render_width=320, render_height=240,
             push=None)
    ```

    - ``render_mode``: ``None`` or ``"rgb_array"`` (a camera following the root, from the
      side; the reference ghost is invisible).
    - ``start_phase``: clip phase in [0, 1) to start from, or ``"random"``.
    - ``episode_seconds``: simulated seconds until truncation (None: the skill's).
    - ``render_width``, ``render_height``: frame size in pixels.
    - ``render_view``: ``follow`` (behind the root) or ``side``.
    - ``push``: ``{"impulse": N*s, "time": s or None}``, a lateral push on the chest in
      every episode (:mod:`sim.push`); without a time, at a random moment of the clip's
      cycle that starts 3 s after reset.
    - ``skill``: the :class:`sim.skills.Skill` to imitate; each registered subclass fixes
      its own, so this is only for trying clips that are not registered.
    """

    SKILL: ClassVar[Skill] = WALK
    """The skill a subclass imitates unless the constructor is given another."""

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        # One frame per action: 541 actions per 20 s (1/30 s rounded up to whole ticks).
        "render_fps": 27,
    }

    def __init__(
        self,
        render_mode: str | None = None,
        start_phase: float | str = 0.0,
        episode_seconds: float | None = None,
        render_width: int = 320,
        render_height: int = 240,
        push: dict[str, Any] | None = None,
        skill: Skill | None = None,
        render_view: str = "follow",
    ) -> None:
        self._check_render_mode(render_mode)
        self._check_phase(start_phase)
        self.skill = skill if skill is not None else self.SKILL
        if episode_seconds is None:
            episode_seconds = self.skill.episode_seconds
        if not episode_seconds > 0:
            raise ValueError(f"episode_seconds must be positive, got {episode_seconds}")
        self.render_mode = render_mode
        self.start_phase = start_phase
        self.episode_seconds = float(episode_seconds)
        # 2.5 m (was 3): the humanoid fills about half the frame's height.
        self.camera = FollowCamera(
            width=render_width, height=render_height, distance=2.5,
            yaw=view_yaw(render_view), pitch=-10.0, up_axis=1,
        )  # fmt: skip
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self.action_space = spaces.Box(ACTION_LOW, ACTION_HIGH, (ACTION_DIM,), dtype=np.float32)

        self.clip = MotionClip.load(pybullet_data_path(self.skill.clip))
        client, floor = connect_scene()
        self._client: int | None = client
        try:
            self._character = WalkCharacter(client, floor)
            if render_mode == "rgb_array":
                paint_links(client, self._character.body, RENDER_COLOURS)
        except BaseException:
            self.close()
            raise
        finish_scene(client)
        # Restoring this snapshot on every reset makes an episode independent of the
        # previous ones (contact caches, motor state) without reloading the models.
        self._pristine_state = p.saveState(physicsClientId=client)
        self._clock = 0.0
        self._ticks = 0
        self._start_root = (0.0, 0.0, 0.0)
        self._forward = tuple(self.clip.travel_direction.tolist())
        self._push_plan = PushPlan.from_arg(push)
        self._push: Push | None = None
        self._pushed = False

    @staticmethod
    def _check_phase(phase: Any) -> None:
        if isinstance(phase, str) and phase == "random":
            return
        try:
            valid = not isinstance(phase, str) and 0.0 <= float(phase) < 1.0
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(f"start_phase must be 'random' or a number in [0, 1), got {phase!r}")

    # -- gymnasium API ------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        phase = (options or {}).get("start_phase", self.start_phase)
        self._check_phase(phase)
        if isinstance(phase, str):  # "random"
            phase = float(self.np_random.uniform(0.0, 1.0))
        client = self._require_client()
        p.restoreState(self._pristine_state, physicsClientId=client)
        # The clock is clip time: it starts at the phase's time, as the reference's does.
        self._clock = float(phase) * self.clip.cycle_time
        self._ticks = 0
        self._character.reset(self.clip.pose_at(self._clock))
        self._start_root = self._character.root_position()
        self._pushed = False
        plan = PushPlan.for_episode(self._push_plan, options)
        self._push = None
        if plan is not None:  # drawn last: the start is the unpushed one
            self._push = plan.draw(self.np_random, PUSH_EARLIEST_S,
                                              self.clip.cycle_time)  # fmt: skip
        obs, terms = self._observe()
        return obs, self._info(terms, fell=False)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"action must be finite, got {a}")
        self._require_client()
        character = self._character
        targets = action_to_targets(a)
        # Same float arithmetic as the reference clock, so each action gets the same
        # number of ticks (8 or 9) as there.
        next_action_at = self._clock + CONTROL_PERIOD
        fell = False
        while True:
            if self._push is not None and not self._pushed:
                self._maybe_push()
            character.step(targets)
            self._clock += TICK
            self._ticks += 1
            if character.fell():
                fell = True
                break
            if self._clock >= next_action_at:
                break
        obs, terms = self._observe()
        truncated = not fell and self._ticks >= self.episode_seconds * TICKS_PER_SECOND
        return obs, terms.total, fell, truncated, self._info(terms, fell=fell)

    @property
    def step_limit(self) -> int:
        """The most actions an episode can take before truncation: each lasts at least
        8 ticks (1/30 s), so an upper bound (541 of the bound's 600 in a 20-s walk)."""
        ticks = math.ceil(self.episode_seconds * TICKS_PER_SECOND - 1e-9)
        return math.ceil(ticks / round(CONTROL_PERIOD * TICKS_PER_SECOND))

    @property
    def mirror(self) -> MirrorSpec:
        """Left/right mirror map of observations and actions (see :mod:`sim.mirror`)."""
        return mirror_spec(self.skill.env_id)

    def show_pose(self, pose: ClipPose) -> None:
        """Put the humanoid into ``pose`` kinematically (no physics step, no episode
        change): to render a motion frame by frame, e.g. a learned one beside the clip."""
        self._character.reset(pose)

    # -- internals ----------------------------------------------------------------------

    def _camera_target(self) -> tuple[float, float, float]:
        return self._character.root_position()

    def _observe(self) -> tuple[np.ndarray, RewardTerms]:
        reading = self._character.read()
        reference = self._character.pose_ghost(self.clip.pose_at(self._clock))
        terms = imitation_reward(reading.body, reference)
        obs = observation(reading, self.clip.phase(self._clock)).astype(np.float32)
        return obs, terms

    def _maybe_push(self) -> None:
        """Apply the requested push (:mod:`sim.push`) on this tick if its time has come."""
        assert self._push is not None
        if self._ticks / TICKS_PER_SECOND < self._push.time:
            return
        forward_x, _, forward_z = self._forward
        left = (forward_z, 0.0, -forward_x)  # y up: up x forward
        self._character.push_chest(self._push.force(left, TICK))
        self._pushed = True

    def _info(self, terms: RewardTerms, fell: bool) -> dict[str, Any]:
        x, _, z = self._character.root_position()
        x0, _, z0 = self._start_root
        forward_x, _, forward_z = self._forward
        info: dict[str, Any] = {**terms.as_info()}
        if self.skill.travels:
            info["distance"] = (x - x0) * forward_x + (z - z0) * forward_z
        info.update(fell=fell, sim_time=self._ticks / TICKS_PER_SECOND,
                    phase=self.clip.phase(self._clock))  # fmt: skip
        if self._push is not None:
            info.update(self._push.info(self._pushed))
        return info
