"""A policy's inputs on recorded states: the windows of the last K observations (and
camera frames) it would have seen at each step of an episode, episode starts repeated as
training pads them (``datasets.training.windows``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.core.errors import PipelineError


def episode_inputs(view: Any, spec: Any, count: int) -> dict[str, np.ndarray]:
    """The inputs for the first ``count`` states of one episode, keyed by input name."""
    from datasets.store.schema import IMAGES, OBSERVATIONS
    from datasets.training.windows import windows_from_rows
    from models.spec import IMAGE_INPUT, OBS_INPUT

    count = min(count, view.info.total_steps)
    inputs = {}
    if spec.image_shape is not None:
        inputs[IMAGE_INPUT] = windows_from_rows(view.dataset(IMAGES)[:count], 0, spec.history)
    if spec.uses_state:
        rows = view.dataset(OBSERVATIONS)[:count].astype(np.float32)
        inputs[OBS_INPUT] = windows_from_rows(rows, 0, spec.history)
    return inputs


def sample_inputs(ds: Any, spec: Any, states: int, where: str) -> dict[str, np.ndarray]:
    """Inputs for ``states`` states spread evenly over every episode of ``ds`` (all of them
    when it holds fewer); ``where`` names the file in the one-line error for one that does
    not fit the policy."""
    meta = ds.metadata
    if meta.env_id != spec.env_id:
        raise PipelineError(f"{where}: recorded in {meta.env_id}; the policy acts in "
                            f"{spec.env_id}")  # fmt: skip
    if spec.camera is not None and not _has_frames(ds, spec):
        raise PipelineError(f"{where}: has no {spec.camera.width}x{spec.camera.height} camera "
                            "frames, which the policy sees")  # fmt: skip
    ids = ds.episode_ids()
    lengths = np.array([ds.episode(i).info.total_steps for i in ids])
    if lengths.sum() == 0:
        raise PipelineError(f"{where}: holds no recorded steps")
    picks = np.unique(np.linspace(0, lengths.sum() - 1, min(states, lengths.sum())).round())
    starts = np.concatenate([[0], np.cumsum(lengths)])
    parts: dict[str, list[np.ndarray]] = {}
    for k, episode in enumerate(ids):
        local = (picks[(picks >= starts[k]) & (picks < starts[k + 1])] - starts[k]).astype(int)
        if local.size:
            for name, rows in episode_inputs(ds.episode(episode), spec, local[-1] + 1).items():
                parts.setdefault(name, []).append(rows[local])
    return {name: np.concatenate(rows) for name, rows in parts.items()}


def _has_frames(ds: Any, spec: Any) -> bool:
    camera = getattr(ds.metadata, "camera", None)
    return camera is not None and (camera.width, camera.height) == (
        spec.camera.width,
        spec.camera.height,
    )
