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
