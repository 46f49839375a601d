"""Headless rendering with a camera that follows the humanoid.

Uses PyBullet's tiny software renderer, which works in DIRECT mode without a display
(measured here: 320x240 in 16-29 ms; EGL falls back to software and is no faster).
:class:`FollowCamera` makes the frames; :class:`FollowCameraEnv` is the rendering half
every environment here shares (``render``, ``camera_frame``, ``close``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import gymnasium as gym
import numpy as np
import pybullet as p


def paint_links(client: int, body: int, colours: Mapping[int, Sequence[float]]) -> None:
    """Give links of ``body`` RGBA colours (link -1 is the base). Visual shapes only: no
    mass, contact or state changes, so an env may do it in its rendering mode alone."""
    for link, rgba in colours.items():
        p.changeVisualShape(body, link, rgbaColor=list(rgba), physicsClientId=client)


VIEW_YAWS = {"follow": 0.0, "side": 90.0}
"""Named camera views: the yaw (degrees) added to an env's follow camera."""


def view_yaw(view: str) -> float:
    """The yaw of a named view (``follow`` or ``side``)."""
    if view not in VIEW_YAWS:
        raise ValueError(f"render_view must be one of {', '.join(VIEW_YAWS)}, got {view!r}")
    return VIEW_YAWS[view]


@dataclass(frozen=True)
class FollowCamera:
    """Camera parameters; the target point is given per frame."""

    width: int = 320
    """Image width in pixels."""
    height: int = 240
    """Image height in pixels."""
    distance: float = 3.0
    """Distance from the target, metres."""
    yaw: float = 0.0
    """Yaw around the up axis, degrees."""
    pitch: float = -15.0
    """Pitch, degrees (negative looks down)."""
    fov: float = 60.0
    """Vertical field of view, degrees."""
    up_axis: int = 2
    """1 when the world is y-up (DeepMimic), 2 when z-up (roboschool)."""
    shadows: bool = False
    """Shadows cost about 1.8x the frame time with the tiny renderer."""

    def resized(self, width: int, height: int, view: str) -> FollowCamera:
        """This camera with another frame size and named view (same distance, pitch, field
        of view): what an image policy sees, or a recording's camera."""
        return replace(self, width=int(width), height=int(height), yaw=view_yaw(view))

    def render(self, client: int, target: Sequence[float]) -> np.ndarray:
        """RGB frame (height, width, 3) uint8 looking at ``target`` in client ``client``."""
        view = p.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=list(target),
            distance=self.distance,
            yaw=self.yaw,
            pitch=self.pitch,
            roll=0.0,
            upAxisIndex=self.up_axis,
            physicsClientId=client,
        )
        proj = p.computeProjectionMatrixFOV(
            fov=self.fov,
            aspect=self.width / self.height,
            nearVal=0.05,
            farVal=100.0,
            physicsClientId=client,
        )
        _, _, rgba, _, _ = p.getCameraImage(
            self.width,
            self.height,
            viewMatrix=view,
            projectionMatrix=proj,
            shadow=int(self.shadows),
            renderer=p.ER_TINY_RENDERER,
            flags=p.ER_NO_SEGMENTATION_MASK,
            physicsClientId=client,
        )
        frame = np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)
        return np.ascontiguousarray(frame[:, :, :3])


class FollowCameraEnv(gym.Env):
    """The rendering half of an environment simulated in its own PyBullet client and filmed
    by a :class:`FollowCamera`: ``render()``, ``camera_frame()`` and ``close()``, written once.

    A subclass declares ``metadata`` (``render_modes`` ``["rgb_array"]`` and its
    ``render_fps``), checks its ``render_mode`` with :meth:`_check_render_mode`, sets
    ``render_mode``, ``camera`` and ``_client`` in its constructor and says what the camera
    looks at in :meth:`_camera_target`.
    """

    camera: FollowCamera
    """The camera ``render()`` films with; ``camera_frame()`` resizes and turns it."""
    _client: int | None
    """This env's PyBullet client; None once closed."""

    @classmethod
    def _check_render_mode(cls, render_mode: str | None) -> None:
        """Refuse a ``render_mode`` that is neither None nor one of ``metadata``'s."""
        if render_mode is not None and render_mode not in cls.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {cls.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )

    def _camera_target(self) -> Sequence[float]:
        """The world point the camera looks at now (the humanoid's torso or root)."""
        raise NotImplementedError

    def _require_client(self) -> int:
        """This env's PyBullet client; RuntimeError once the env is closed."""
        if self._client is None:
            raise RuntimeError(f"{type(self).__name__} is closed")
        return self._client

    def render(self) -> np.ndarray | None:
        """The current state as an RGB frame (height, width, 3) uint8 from ``camera``, or
        None unless the env was made with ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return self._frame(self.camera)

    def camera_frame(self, width: int, height: int, view: str = "follow") -> np.ndarray:
        """A ``height x width`` RGB frame of the current state from a named view (what an
        image policy sees; the same pixels ``render()`` gives with those settings). Needs
        ``render_mode="rgb_array"``: only then is the scene dressed as recorded (the
        motion-imitation humanoid's link colours)."""
        if self.render_mode != "rgb_array":
            raise RuntimeError("camera_frame() needs the env made with render_mode='rgb_array'")
        return self._frame(self.camera.resized(width, height, view))

    def _frame(self, camera: FollowCamera) -> np.ndarray:
        client = self._require_client()
        return camera.render(client, self._camera_target())

    def close(self) -> None:
        """Disconnect the PyBullet client; closing twice is harmless."""
        if self._client is not None:
            p.disconnect(physicsClientId=self._client)
            self._client = None
