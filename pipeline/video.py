"""Streaming video writer: frames go to the encoder as they are rendered, never kept in RAM."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import imageio.v2 as imageio
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".gif")


class VideoWriter:
    """Write RGB frames to an MP4 (H.264 via imageio-ffmpeg) or a GIF."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
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
        self._writer.append_data(frame)
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


def label(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with ``text`` in its top-left corner (black on a white box)."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((6, 4), text)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(255, 255, 255))
    draw.text((6, 4), text, fill=(0, 0, 0))
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
