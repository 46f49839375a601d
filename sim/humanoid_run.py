"""``sim/HumanoidRun-v0``: the roboschool-style PyBullet humanoid running down a stadium."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from sim.camera import FollowCamera, FollowCameraEnv, view_yaw
from sim.mirror import MirrorSpec, mirror_spec
from sim.push import Push, PushPlan
from sim.run_robot import (
    ACT_DIM,
    CONTROL_DT,
    NOMINAL_Z,
    OBS_CLIP,
    OBS_DIM,
    RobotReading,
    RunRobot,
    connect_direct,
)

ALIVE_BONUS = 2.0
FALL_PENALTY = -1.0
FALL_HEIGHT = 0.78
"""Torso height (metres) at or below which the humanoid has fallen."""
# The humanoid's 17 joints cost much electricity from policy noise alone, so the
# roboschool per-motor costs are scaled up by 4.25 for it.
ELECTRICITY_COST = 4.25 * -2.0
STALL_TORQUE_COST = 4.25 * -0.1
JOINTS_AT_LIMIT_COST = -0.1
JOINT_NOISE = 0.1
"""Half-width (radians) of the uniform noise added to every joint at reset."""


PUSH_EARLIEST_S = 2.0
PUSH_WINDOW_S = 1.0
"""A push without a time comes between 2 and 3 s after reset (the run's stride is
shorter than a second)."""


class HumanoidRunEnv(FollowCameraEnv):
    """A 3D humanoid that should run forward (+x) as fast as it can without falling.

    ## Description

    The roboschool humanoid (``pybullet_data/mjcf/humanoid_symmetric.xml``: torso,
    abdomen, pelvis, two legs, two arms; 17 hinge joints driven by torque motors) on
    the stadium plane of pybullet, simulated headless in its own PyBullet client. The
    dynamics, observation and reward reproduce pybullet's ``HumanoidBulletEnv-v0``
    (the environment the shipped ``humanoid_run`` expert was trained on); our tests
    check them step by step against it. Fast: about 2000 steps/s on one core with the
    NumPy expert in the loop (the reference runs about 1000).

    ## Action Space

    ``Box(-1, 1, (17,), float32)``: one torque command per motor, in this order:
    abdomen z/y/x; right hip x/z/y, right knee; left hip x/z/y, left knee; right
    shoulder 1/2, right elbow; left shoulder 1/2, left elbow. The torque applied is
    ``0.41 * gear * clip(a, -1, 1)`` with gears 100 (abdomen, hip x/z), 300 (hip y),
    200 (knee) and 75 (arms). As in the reference, the electricity cost is computed
    from the unclipped action.

    ## Observation Space

    ``Box(-5, 5, (44,), float32)`` (every entry is clipped to +-5):

    | index | observation |
    |---|---|
    | 0 | torso height minus 0.8 m |
    | 1, 2 | sin and cos of the angle between torso heading and the walk target (+x) |
    | 3, 4, 5 | 0.3 x torso velocity (forward, lateral, vertical) in the heading frame |
    | 6, 7 | torso roll and pitch (rad) |
    | 8 + 2i | position of joint i scaled to [-1, 1] between its limits |
    | 9 + 2i | 0.1 x angular velocity of joint i (rad/s) |
    | 42, 43 | right / left foot touching the floor (1 or 0), one step late |

    Joints ``i`` follow the model order (abdomen z/y/x, right hip x/z/y, right knee,
    left hip x/z/y, left knee, right shoulder 1/2, right elbow, left shoulder 1/2,
    left elbow). The foot contacts are those measured after the previous step, as in
    the reference.

    ## Rewards

    The reward is the sum of five terms, each also returned in ``info``:

    - ``reward_alive``: +2 while the torso is above 0.78 m, -1 once it is not.
    - ``reward_progress``: decrease of the distance from the mean body position (mean
      over all scene parts, including the static floor) to a target 1 km ahead along
      +x, divided by the control step 0.0165 s, i.e. a speed in m/s (~3.2 for the
      expert).
    - ``reward_electricity``: ``-8.5 * mean(|a * v|) - 0.425 * mean(a^2)`` with ``a``
      the action and ``v`` observation entries 9, 11, ..., 41 taken element-wise in
      their own (model) order.
    - ``reward_joints_at_limit``: -0.1 per joint whose scaled position exceeds 0.99.
    - ``reward_feet_collision``: always 0 (kept for the reference's term list).

    ## Starting State

    The humanoid starts upright with its torso at (0, 0, 1.4) m, at rest, every joint
    angle drawn uniformly from [-0.1, 0.1] rad (from ``self.np_random``). The whole
    simulation is restored from a snapshot at every reset, so ``reset(seed=s)`` gives
    the same episode whatever ran before.

    ## Episode End

    - Termination: the torso's height is 0.78 m or lower (a fall; ``info["fell"]``),
      or the observation is not finite.
    - Truncation: ``max_steps`` steps (1000 by default, 16.5 s of simulated time), or
      ``episode_seconds`` of simulated time where that is given.

    ``info`` of every step holds the five reward terms, ``distance`` (metres the
    torso moved along +x since reset), ``fell`` and ``sim_time`` (seconds since reset).

    ## Arguments

    ```python
    gym.make("sim/HumanoidRun-v0", render_mode=None, max_steps=1000,
             render_width=320, render_height=240, push=None, episode_seconds=None)
    ```

    - ``render_mode``: ``None`` or ``"rgb_array"`` (a camera following the torso).
    - ``max_steps``: steps until truncation.
    - ``episode_seconds``: simulated seconds until truncation instead (rounded to whole
      steps of 0.0165 s; None: ``max_steps``), the option the motion-imitation envs share,
      e.g. for short DAgger rollouts that put labels on the first seconds from rest.
    - ``render_width``, ``render_height``: frame size in pixels.
    - ``render_view``: ``follow`` (behind the torso) or ``side``.
    - ``push``: ``{"impulse": N*s, "time": s or None}``, a lateral push on the torso in
      every episode (:mod:`sim.push`); without a time, at a random moment between 2 and
      3 s after reset.

    ## Version History

    - v0: first version; reproduces pybullet 3.2.7's ``HumanoidBulletEnv-v0`` (0.0165 s
      per step with 4 physics substeps, 1000-step episodes).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        # One frame per control step: 1 / 0.0165 s = 60.6 frames per second.
        "render_fps": round(1.0 / CONTROL_DT),
    }

    def __init__(
        self,
        render_mode: str | None = None,
        max_steps: int = 1000,
        render_width: int = 320,
        render_height: int = 240,
        push: dict[str, Any] | None = None,
        render_view: str = "follow",
        episode_seconds: float | None = None,
    ) -> None:
        self._check_render_mode(render_mode)
        if episode_seconds is not None:
            if not (math.isfinite(episode_seconds) and episode_seconds > 0):
                raise ValueError(f"episode_seconds must be positive, got {episode_seconds}")
            max_steps = max(1, round(episode_seconds / CONTROL_DT))
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.render_mode = render_mode
        self.max_steps = int(max_steps)
        # A shallow pitch keeps the textured floor, which dominates the software renderer's
        # cost, to about half the frame (320x240: ~19 ms instead of ~24 ms at -30 degrees).
        self.camera = FollowCamera(
            width=render_width, height=render_height, distance=3.0,
            yaw=view_yaw(render_view), pitch=-15.0,
        )  # fmt: skip
        self.observation_space = spaces.Box(-OBS_CLIP, OBS_CLIP, (OBS_DIM,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (ACT_DIM,), dtype=np.float32)
        self._client: int | None = connect_direct()
        self._robot = RunRobot(self._client)
        self._steps = 0
        self._potential = 0.0
        self._start_x = 0.0
        self._push_plan = PushPlan.from_arg(push)
        self._push: Push | None = None
        self._pushed = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        noise = self.np_random.uniform(-JOINT_NOISE, JOINT_NOISE, size=ACT_DIM)
        self._robot.reset(noise)
        reading = self._robot.read()
        self._potential = self._potential_of(reading)
        self._start_x = reading.torso_xyz[0]
        self._steps = 0
        self._pushed = False
        info: dict[str, Any] = {"distance": 0.0, "fell": False, "sim_time": 0.0}
        plan = PushPlan.for_episode(self._push_plan, options)
        self._push = None
        if plan is not None:  # drawn last: the start is the unpushed one
            self._push = plan.draw(self.np_random, PUSH_EARLIEST_S, PUSH_WINDOW_S)
            info.update(self._push.info(pushed=False))
        return reading.observation, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action)
        if a.shape != (ACT_DIM,):
            raise ValueError(f"action must have shape ({ACT_DIM},), got {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"action must be finite, got {a}")
        robot = self._robot
        robot.apply_action(a)
        push = self._push
        if push is not None and not self._pushed and self._steps * CONTROL_DT >= push.time:
            # Runs along +x with z up: the left is +y. One stepSimulation call is the
            # whole control step (its substeps keep the force).
            robot.push_torso(push.force((0.0, 1.0, 0.0), CONTROL_DT))
            self._pushed = True
        robot.step_physics()
        reading = robot.read()
        # Contacts are read after the observation, so the observation lags one step.
        robot.update_foot_contacts()
        self._steps += 1

        obs = reading.observation
        # The height test goes through the float32 observation, as in the reference.
        alive = ALIVE_BONUS if obs[0] + NOMINAL_Z > FALL_HEIGHT else FALL_PENALTY
        fell = alive < 0.0
        terminated = fell or not bool(np.isfinite(obs).all())
        potential = self._potential_of(reading)
        progress = float(potential - self._potential)
        self._potential = potential
        # The reference pairs the action (motor order) with joint speeds in model order;
        # the two orders happen to coincide for this model, so this is not a mix-up here.
        electricity = ELECTRICITY_COST * float(np.abs(a * reading.joint_speeds).mean())
        electricity += STALL_TORQUE_COST * float(np.square(a).mean())
        joints_at_limit = float(JOINTS_AT_LIMIT_COST * reading.joints_at_limit)
        feet_collision = 0.0
        reward = sum((alive, progress, electricity, joints_at_limit, feet_collision))
        info = {
            "reward_alive": alive,
            "reward_progress": progress,
            "reward_electricity": electricity,
            "reward_joints_at_limit": joints_at_limit,
            "reward_feet_collision": feet_collision,
            "distance": reading.torso_xyz[0] - self._start_x,
            "fell": fell,
            "sim_time": self._steps * CONTROL_DT,
        }
        if push is not None:
            info.update(push.info(self._pushed))
        truncated = self._steps >= self.max_steps
        return obs, float(reward), terminated, truncated, info

    @staticmethod
    def _potential_of(reading: RobotReading) -> float:
        # Progress is the change of this potential: distance to target per control step.
        return -reading.walk_target_dist / CONTROL_DT

    @property
    def step_limit(self) -> int:
        """The most actions an episode can take before truncation (``max_steps``)."""
        return self.max_steps

    @property
    def mirror(self) -> MirrorSpec:
        """Left/right mirror map of observations and actions (see :mod:`sim.mirror`)."""
        return mirror_spec("sim/HumanoidRun-v0")

    def _camera_target(self) -> tuple[float, float, float]:
        return self._robot.torso_position()
