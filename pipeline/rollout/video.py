"""Streaming video writer: frames go to the encoder as they are rendered, never kept in RAM."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import imageio.v2 as imageio
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".gif")
LABEL_FONT_SIZE = 12


@dataclass(frozen=True)
class Filming:
    """How to film one episode (plain data, so it travels to worker processes)."""

    path: str
    """Video file (.mp4 or .gif)."""
    caption: str = ""
    """Text written into the bottom-left corner of every frame (may hold newlines)."""
    from_step: int = 0
    """First control step to film: steps before it are simulated but not rendered."""


class VideoWriter:
    """Write RGB frames to an MP4 (H.264 via imageio-ffmpeg) or a GIF.

    With ``caption`` every frame carries that text in its bottom-left corner.
    """

    def __init__(self, path: str | Path, fps: float, caption: str = "") -> None:
        self.path = Path(path)
        self.caption = caption
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"{self.path}: video must end in {' or '.join(VIDEO_SUFFIXES)}")
        if self.path.suffix.lower() == ".gif":
            # GIF frame durations are in milliseconds.
            self._writer = imageio.get_writer(self.path, mode="I", duration=1000.0 / fps, loop=0)
        else:
            # yuv420p needs even sizes (macro_block_size=2); ffmpeg runs as a separate
            # process, so encoding overlaps with simulation on the second core.
            self._writer = imageio.get_writer(
                self.path,
                fps=fps,
                codec="libx264",
                quality=7,
                macro_block_size=2,
                pixelformat="yuv420p",
                ffmpeg_log_level="error",
                # x264's default preset costs ~3x the CPU of veryfast for no visible gain
                # at these sizes, and its default thread pool oversubscribes the two cores
                # it shares with the simulation (measured: ~2 ms of CPU per 320x240 frame
                # with one thread against ~15 ms to render it).
                output_params=["-preset", "veryfast", "-threads", "1"],
            )
        self.frames = 0

    def append(self, frame: np.ndarray) -> None:
        self._writer.append_data(label(frame, self.caption, bottom=True) if self.caption else frame)
        self.frames += 1

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def label(frame: np.ndarray, text: str, bottom: bool = False) -> np.ndarray:
    """``frame`` with ``text`` (lines split at newlines) in its top-left or bottom-left corner,
    black on a white box."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    # Pillow's built-in font at 12 px: at its default 10 px the spaces between words vanish.
    font = ImageFont.load_default(size=LABEL_FONT_SIZE)
    anchor = (6, 4)
    if bottom:
        height = draw.multiline_textbbox((0, 0), text, font=font)[3]
        anchor = (6, image.height - height - 5)
    box = draw.multiline_textbbox(anchor, text, font=font)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(255, 255, 255))
    draw.multiline_text(anchor, text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def side_by_side(
    left: Path, right: Path, out: Path, fps: float, labels: tuple[str, str] = ("", "")
) -> int:
    """Join two videos of equal frame size side by side into ``out``; returns frames.

    The shorter one (a policy that fell early) holds its last frame to the end; ``labels``
    are written into the top-left corner of each side.
    """
    readers = [imageio.get_reader(path) for path in (left, right)]
    try:
        frames = [iter(reader) for reader in readers]
        last: list[np.ndarray | None] = [None, None]
        with VideoWriter(out, fps) as writer:
            while True:
                current = [next(it, None) for it in frames]
                if all(frame is None for frame in current):
                    break
                for i, frame in enumerate(current):
                    if frame is not None:
                        last[i] = frame
                left_frame, right_frame = (
                    label(frame, text) if text else frame
                    for frame, text in zip(last, labels, strict=True)
                )
                gap = np.full((left_frame.shape[0], 4, 3), 255, dtype=np.uint8)
                writer.append(np.concatenate([left_frame, gap, right_frame], axis=1))
            return writer.frames
    finally:
        for reader in readers:
            reader.close()
