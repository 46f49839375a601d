"""The environments' shared rendering (``sim.camera.FollowCameraEnv``): one implementation
of ``render``, ``camera_frame`` and ``close``, and the same pixels as before it was shared.

``data/follow_camera_frames.npz`` holds small frames that the environments gave before
their rendering moved into the shared base (each env had its own copy then); ``python
tests/test_rendering.py`` writes it anew from the code as it is. A change of the camera, the
camera target, the link colours or the frame layout shows up here as a pixel difference.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pybullet as p
import pytest

from sim.camera import FollowCameraEnv
from sim.humanoid_run import HumanoidRunEnv
from sim.humanoid_skills import HumanoidBackflipEnv
from sim.humanoid_walk import HumanoidWalkEnv
from sim.motion_imitation import MotionImitationEnv

REFERENCE = Path(__file__).parent / "data" / "follow_camera_frames.npz"
ENVS = {"run": HumanoidRunEnv, "walk": HumanoidWalkEnv, "backflip": HumanoidBackflipEnv}
SHARED = ("render", "camera_frame", "_frame", "close", "_require_client", "_check_render_mode")


def film(name: str) -> dict[str, np.ndarray]:
    """Frames of env ``name`` (48x36 ``render()``, 40x30 camera frames) after reset(seed=3)
    and after five zero actions, keyed ``<name>_<moment>_<view>``."""
    env = ENVS[name](render_mode="rgb_array", render_width=48, render_height=36)
    try:
        env.reset(seed=3)
        frames = {
            f"{name}_reset_render": env.render(),
            f"{name}_reset_side": env.camera_frame(40, 30, "side"),
            f"{name}_reset_follow": env.camera_frame(40, 30),
        }
        for _ in range(5):
            env.step(np.zeros(env.action_space.shape, dtype=np.float32))
        frames[f"{name}_step5_render"] = env.render()
        frames[f"{name}_step5_side"] = env.camera_frame(40, 30, "side")
    finally:
        env.close()
    return frames


@pytest.mark.parametrize("name", ENVS)
def test_frames_equal_those_before_the_shared_base(name: str) -> None:
    with np.load(REFERENCE) as reference:
        expected = {key: reference[key] for key in reference.files if key.startswith(name)}
    frames = film(name)
    assert sorted(frames) == sorted(expected)
    for key, frame in frames.items():
        assert frame.dtype == np.uint8 and frame.flags.c_contiguous, key
        np.testing.assert_array_equal(frame, expected[key], err_msg=key)


@pytest.mark.parametrize("cls", [HumanoidRunEnv, MotionImitationEnv, *ENVS.values()])
def test_every_env_renders_and_closes_through_the_one_base(cls: type) -> None:
    assert issubclass(cls, FollowCameraEnv)
    for attribute in SHARED:
        home = next(c for c in cls.__mro__ if attribute in vars(c))
        assert home is FollowCameraEnv, f"{home.__name__} redefines {attribute}"
    assert cls._camera_target is not FollowCameraEnv._camera_target  # what each films
    assert cls.metadata["render_modes"] == ["rgb_array"] and cls.metadata["render_fps"] > 0


@pytest.mark.parametrize("name", ENVS)
def test_render_is_the_camera_frame_of_the_envs_settings(name: str) -> None:
    env = ENVS[name](render_mode="rgb_array", render_width=40, render_height=30,
                     render_view="side")  # fmt: skip
    try:
        env.reset(seed=0)
        np.testing.assert_array_equal(env.render(), env.camera_frame(40, 30, "side"))
    finally:
        env.close()


@pytest.mark.parametrize("name", ENVS)
def test_modes_and_closing(name: str) -> None:
    with pytest.raises(ValueError, match="render_mode must be None or one of"):
        ENVS[name](render_mode="human")
    plain = ENVS[name]()
    plain.reset(seed=0)
    assert plain.render() is None
    with pytest.raises(RuntimeError, match="needs the env made with render_mode='rgb_array'"):
        plain.camera_frame(8, 6)
    plain.close()

    env = ENVS[name](render_mode="rgb_array", render_width=8, render_height=6)
    client = env._client
    env.close()
    assert not p.isConnected(physicsClientId=client)
    env.close()  # idempotent
    for call in (env.render, lambda: env.camera_frame(8, 6)):
        with pytest.raises(RuntimeError, match=f"^{type(env).__name__} is closed$"):
            call()


if __name__ == "__main__":
    REFERENCE.parent.mkdir(exist_ok=True)
    np.savez_compressed(REFERENCE, **{k: v for name in ENVS for k, v in film(name).items()})
    sys.stdout.write(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes)\n")
