"""Test-only driver of the original pybullet DeepMimic walk environment.

The product never imports ``pybullet_envs``; the tests do, to prove numerically that
``sim/HumanoidWalk-v0`` behaves like the code it reproduces. ``pybullet_envs/__init__.py``
imports the legacy ``gym`` package, so it is bypassed: a stub package whose ``__path__``
points at the installed folder is put into ``sys.modules`` first, and the submodules then
import normally from it.

:class:`ReferenceWalk` runs the control loop of ``deep_mimic/testrl.py`` (the runner pybullet
ships with it): physics ticks of 1/240 s, a new action whenever the env's
``need_new_action`` says so, the fall/time check after every tick.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.machinery
import importlib.util
import io
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pybullet as p

TICK = 1.0 / 240.0


@contextlib.contextmanager
def _stub_package() -> Iterator[None]:
    """``pybullet_envs`` as a bare package (its ``__init__`` never runs) while importing."""
    if sys.modules.get("pybullet_envs") is not None:
        yield  # another helper's stub is in place
        return
    spec = importlib.util.find_spec("pybullet_envs")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pybullet_envs is not installed (it ships in the pybullet wheel)")
    locations = list(spec.submodule_search_locations)
    stub = types.ModuleType("pybullet_envs")
    stub.__path__ = locations
    stub.__spec__ = importlib.machinery.ModuleSpec("pybullet_envs", loader=None, is_package=True)
    stub.__spec__.submodule_search_locations = locations
    sys.modules["pybullet_envs"] = stub
    try:
        yield
    finally:
        # The imported submodules stay loaded; only the stub leaves, so nothing else in
        # the session mistakes it for the real package.
        sys.modules.pop("pybullet_envs", None)


@functools.cache
def _reference_modules() -> tuple[Any, Any]:
    with _stub_package():
        from pybullet_envs.deep_mimic.env import pybullet_deep_mimic_env as deep_mimic_env
    from pybullet_utils.arg_parser import ArgParser

    return deep_mimic_env, ArgParser


def _capture_locals(bound_method: Any, *args: Any) -> tuple[Any, dict[str, Any]]:
    """Call ``bound_method`` and return (result, its local variables at return).

    ``HumanoidStablePD.getReward`` computes the four reward terms but returns only their
    weighted sum; the profiler hook reads the terms without changing the reference code.
    """
    code = bound_method.__func__.__code__
    captured: dict[str, Any] = {}

    def hook(frame: types.FrameType, event: str, _arg: Any) -> None:
        if event == "return" and frame.f_code is code:
            captured.update(frame.f_locals)

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        result = bound_method(*args)
    finally:
        sys.setprofile(previous)
    return result, captured


class ReferenceWalk:
    """The original ``PyBulletDeepMimicEnv`` behind a small control-step API, loaded with
    a skill's args file (``run_humanoid3d_<skill>_args.txt``: its clip and checkpoint)."""

    def __init__(self, start_phase: float = 0.0, skill: str = "walk") -> None:
        deep_mimic_env, ArgParser = _reference_modules()
        import pybullet_data

        args = ArgParser()
        args_file = Path(pybullet_data.getDataPath()) / "args" / f"run_humanoid3d_{skill}_args.txt"
        if not args.load_file(str(args_file)):
            raise RuntimeError(f"{args_file}: cannot load")
        # The reference prints progress on construction; keep test output clean.
        with contextlib.redirect_stdout(io.StringIO()):
            self.env = deep_mimic_env.PyBulletDeepMimicEnv(
                args, enable_draw=False, init_strategy=deep_mimic_env.InitializationStrategy.START
            )
        self.humanoid = self.env._humanoid
        self.client = self.env._pybullet_client
        # Our scene sorts overlapping pairs (the reference's default does not, which makes
        # its episodes depend on earlier ones): the same setting here keeps the physics
        # comparable bit for bit.
        self.client.setPhysicsEngineParameter(deterministicOverlappingPairs=1)
        self._set_start_phase(start_phase)
        self.ended = False
        # The first call is always True (the env sets its clock one second back on reset)
        # and schedules the end of the first control interval.
        assert self.env.need_new_action(0)

    def _set_start_phase(self, phase: float) -> None:
        if phase == 0.0:
            return
        # What the env's reset does for a random start, with the phase given.
        env = self.env
        env.t = phase * self.humanoid.getCycleTime()
        self.humanoid.setSimTime(env.t)
        self.humanoid.resetPose()
        self.humanoid.resetPose()
        env.needs_update_time = env.t - 1

    @property
    def sim_time(self) -> float:
        return float(self.env.t)

    def observation(self) -> np.ndarray:
        return np.asarray(self.env.record_state(0), dtype=np.float64)

    def reward_terms(self) -> dict[str, float]:
        """Total reward and its terms, as the env's ``calc_reward`` computes them now."""
        humanoid = self.humanoid
        kin_pose = humanoid.computePose(humanoid._frameFraction)
        total, local = _capture_locals(humanoid.getReward, kin_pose)
        return {
            "reward": float(total),
            "reward_pose": float(local["pose_reward"]),
            "reward_velocity": float(local["vel_reward"]),
            "reward_end_effector": float(local["end_eff_reward"]),
            "reward_root": float(local["root_reward"]),
        }

    def step(self, action: np.ndarray) -> int:
        """Apply ``action`` for one control interval; returns the number of physics ticks."""
        if self.ended:
            raise RuntimeError("episode has ended")
        self.env.set_action(0, np.asarray(action, dtype=np.float64))
        ticks = 0
        while True:
            self.env.update(TICK)
            ticks += 1
            if self.env.is_episode_end():
                self.ended = True
                break
            if self.env.need_new_action(0):
                break
        return ticks

    def fell(self) -> bool:
        return bool(self.humanoid.terminates())

    def root_position(self) -> np.ndarray:
        pos, _ = self.client.getBasePositionAndOrientation(self.humanoid._sim_model)
        return np.asarray(pos)

    def close(self) -> None:
        self.client.disconnect()


def physics_state(client: int, body: int) -> np.ndarray:
    """Every number PyBullet integrates for ``body``: base pose, velocities, joint states."""
    pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=client)
    lin, ang = p.getBaseVelocity(body, physicsClientId=client)
    joints = p.getJointStatesMultiDof(body, list(range(15)), physicsClientId=client)
    return np.array([*pos, *orn, *lin, *ang, *(x for s in joints for x in (*s[0], *s[1]))])
