"""A lateral push on the torso: how far a gait is from a replay of the expert.

An environment made with ``push={"impulse": j, "time": t}`` applies, in every episode, a
horizontal impulse of ``j`` N*s (>= 0) on the torso, perpendicular to the walking direction,
at the first physics step at or after ``t`` seconds since reset. ``time`` None pushes at a
random moment of the gait instead: ``earliest + u * window`` seconds with ``u`` uniform in
[0, 1) (the environment's window spans one gait cycle after the start-up transients). The
side (left or right) is random per episode. Both draws come from the environment's
``np_random`` after everything else ``reset`` draws, so a seed gives the same start and the
same push whoever acts, and the start is the one it has without a push.

The impulse is a force of ``j / dt`` held for one physics step of length ``dt``.
``info["pushed"]`` (present only in a pushed environment) is 1.0 from the step that applied
it on; ``info["push_time"]`` and ``info["push_impulse"]`` (signed: > 0 to the walker's left)
say what this episode gets.

``reset(options={"push": spec})`` replaces the constructor's plan for that one episode
(``spec`` as the ``push=`` argument, or None for no push): a training curriculum draws a
different impulse per episode without rebuilding the environment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PushPlan:
    """How every episode is pushed."""

    impulse: float
    """N*s, >= 0."""
    time: float | None = None
    """Seconds since reset; None: a random moment of the gait."""

    @classmethod
    def from_arg(cls, spec: dict[str, Any] | None) -> PushPlan | None:
        """The plan a ``push=`` constructor argument asks for; ValueError if malformed."""
        if spec is None:
            return None
        try:
            impulse = float(spec["impulse"])
            time = None if spec.get("time") is None else float(spec["time"])
        except (TypeError, KeyError, ValueError, AttributeError):
            raise ValueError(
                f"push must be a dict with a number 'impulse' and an optional 'time', got {spec!r}"
            ) from None
        if not (math.isfinite(impulse) and impulse >= 0):
            raise ValueError(f"push impulse must be a finite number >= 0, got {spec!r}")
        if time is not None and not (math.isfinite(time) and time >= 0):
            raise ValueError(f"push time must be a finite number >= 0, got {spec!r}")
        return cls(impulse, time)

    @classmethod
    def for_episode(
        cls, default: PushPlan | None, options: dict[str, Any] | None
    ) -> PushPlan | None:
        """The plan of one episode: ``options["push"]`` where reset was given one (None
        there: no push), else the environment's ``default``."""
        if options is None or "push" not in options:
            return default
        return cls.from_arg(options["push"])

    def draw(self, rng: np.random.Generator, earliest: float, window: float) -> Push:
        """This episode's push: the moment (random in the gait window unless fixed) and
        the side."""
        u, side = rng.random(), rng.random()
        time = self.time if self.time is not None else earliest + u * window
        return Push(time, self.impulse if side < 0.5 else -self.impulse)


@dataclass(frozen=True)
class Push:
    """One episode's push."""

    time: float
    """Seconds since reset."""
    impulse: float
    """N*s, signed: > 0 to the walker's left."""

    def force(self, left: tuple[float, float, float], dt: float) -> list[float]:
        """World-frame force that delivers the impulse over one physics step ``dt``, given
        the unit vector to the walker's left."""
        return [self.impulse / dt * component for component in left]

    def info(self, pushed: bool) -> dict[str, float]:
        return {"pushed": float(pushed), "push_time": self.time, "push_impulse": self.impulse}
