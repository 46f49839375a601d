"""Which episode a video shows, and filming it by replaying its seed.

Every episode first runs without rendering; videos then replay chosen seeds with rendering
on (one seed gives one rollout on one machine, and rendering only reads the scene). Showing
the first seed regardless misled: on the quickstart's first seed the learner and the expert
both fell, next to a table saying 92% survival. So a video shows the first seed on which
the reference policy (the expert when comparing, else the policy itself) survives the whole
episode, and a second, short clip shows the policy's first fall, if it fell anywhere.
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.rollout.episodes import EpisodeResult
from pipeline.rollout.policies import Policy
from pipeline.rollout.video import Filming
from pipeline.rollout.workers import EpisodeTask, run_episodes

FALL_CLIP_SECONDS = 3.0
"""The first-fall clip shows this much simulated time before the fall."""
CAPTION_WIDTH = 44
"""Characters per caption line: about 240 pixels, within a 320-pixel frame."""


@dataclass(frozen=True)
class VideoChoice:
    """The seed a video shows, and why."""

    seed: int
    reason: str
    """Why this seed, in words."""


def choose_video_episode(results: list[EpisodeResult], who: str) -> VideoChoice:
    """The first seed on which ``who`` survived the whole episode in ``results``; the first
    seed when it fell on all of them. The one selection rule of every command's videos."""
    for result in results:
        if not result.fell:
            reason = f"first seed on which the {who} survives the whole episode"
            return VideoChoice(result.seed, reason)
    return VideoChoice(results[0].seed, f"the {who} falls on every seed; the first is shown")


def first_fall(results: list[EpisodeResult]) -> EpisodeResult | None:
    """The first episode (in seed order) that ended in a fall, if any."""
    return next((r for r in results if r.fell), None)


def first_fall_path(video: Path) -> Path:
    """Where the first-fall clip goes next to ``video``."""
    return video.with_name(f"{video.stem}_first_fall{video.suffix}")


@dataclass(frozen=True)
class Filmed:
    """A video written: where, which seed, and what it shows."""

    path: str
    seed: int
    what: str

    def line(self) -> str:
        """The output line naming it."""
        return f"video: {self.path} (seed {self.seed}: {self.what})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def caption(text: str) -> str:
    """``text`` wrapped for a frame's caption box."""
    return "\n".join(textwrap.wrap(text, CAPTION_WIDTH))


def film(
    env_id: str,
    env_kwargs: dict[str, Any],
    policy: Policy,
    seed: int,
    filming: Filming,
    measured: EpisodeResult,
) -> str:
    """Replay ``seed`` in this process with ``filming``; returns a note when the replay did
    not reproduce the ``measured`` episode (empty when it did)."""
    task = EpisodeTask(seed, video=filming)
    (replay,) = run_episodes(env_id, env_kwargs, policy, [task], workers=1)
    if (replay.steps, replay.fell) == (measured.steps, measured.fell):
        return ""
    return (f"; this replay differs from the measured episode ({replay.steps} steps, "
            f"fell {replay.fell}; measured {measured.steps}, fell {measured.fell})")  # fmt: skip


def film_fall(
    env_id: str,
    env_kwargs: dict[str, Any],
    policy: Policy,
    name: str,
    fall: EpisodeResult,
    path: Path,
) -> Filmed:
    """The last :data:`FALL_CLIP_SECONDS` of ``fall`` (an episode ``name`` fell in)."""
    steps_per_s = fall.steps / fall.survived_s if fall.survived_s > 0 else 0.0
    from_step = max(0, fall.steps - round(FALL_CLIP_SECONDS * steps_per_s))
    shown_s = (fall.steps - from_step) / steps_per_s if steps_per_s else 0.0
    shown = f"the last {shown_s:.1f} s before it" if from_step else "the episode up to it"
    what = f"the {name}'s first fall, at {fall.survived_s:.1f} s; {shown}"
    text = caption(f"{name}, seed {fall.seed}: {what}")
    note = film(env_id, env_kwargs, policy, fall.seed, Filming(str(path), text, from_step), fall)
    return Filmed(str(path), fall.seed, what + note)


def film_policy(
    env_id: str,
    env_kwargs: dict[str, Any],
    policy: Policy,
    name: str,
    results: list[EpisodeResult],
    choice: VideoChoice,
    video: Path,
) -> list[Filmed]:
    """``name`` on the chosen seed into ``video`` and, when it fell on any seed, its first
    fall into :func:`first_fall_path`."""
    measured = next(r for r in results if r.seed == choice.seed)
    text = caption(f"{name}, seed {choice.seed}: {choice.reason}")
    note = film(env_id, env_kwargs, policy, choice.seed, Filming(str(video), text), measured)
    filmed = [Filmed(str(video), choice.seed, choice.reason + note)]
    fall = first_fall(results)
    if fall is not None:
        filmed.append(film_fall(env_id, env_kwargs, policy, name, fall, first_fall_path(video)))
    return filmed


def no_fall_line(name: str) -> str:
    """What the output says instead of naming a first-fall clip."""
    return f"no first-fall clip: the {name} fell on no seed"
