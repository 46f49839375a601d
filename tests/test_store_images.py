"""Camera frames in the episode store: written with the episode (one frame per chunk,
compressed), checked against the file's camera, covered by the checksum, read lazily."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from datasets import CameraSpec, EpisodeWriter, open_dataset, validate
from datasets.store.errors import IncompatibleDatasetError, InvalidEpisodeError, SchemaError
from tests.test_store import META, make_episode

CAMERA = CameraSpec(width=12, height=8, view="follow")
META_CAMERA = dataclasses.replace(META, camera=CAMERA)


def frames(rng: np.random.Generator, steps: int, camera: CameraSpec = CAMERA) -> np.ndarray:
    return rng.integers(0, 256, (steps + 1, *camera.frame_shape), dtype=np.uint8)


def test_frames_round_trip_one_per_chunk_and_read_lazily(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "images.h5"
    stored = [frames(rng, 20), frames(rng, 30)]
    with EpisodeWriter.create(path, META_CAMERA) as writer:
        for images in stored:
            steps = len(images) - 1
            assert writer.commit(make_episode(rng, steps, images=images)).committed
    assert validate(path) == 2
    with open_dataset(path) as ds:
        assert ds.metadata.camera == CAMERA
        assert ds.verify() == []
        for episode_id, images in zip(ds.episode_ids(), stored, strict=True):
            view = ds.episode(episode_id)
            lazy = view.images
            assert isinstance(lazy, h5py.Dataset)  # nothing read until indexed
            assert lazy.chunks == (1, 8, 12, 3) and lazy.compression == "gzip"
            np.testing.assert_array_equal(lazy[5], images[5])
            np.testing.assert_array_equal(view.load().images, images)
        summary = ds.summary()
    assert summary.camera == "12x8 follow"
    # Random pixels do not compress: about the raw size of the 53 frames.
    assert 0.9 * 53 * 8 * 12 * 3 < summary.image_bytes < 1.2 * 53 * 8 * 12 * 3


def one_episode_file(tmp_path, steps: int) -> tuple[Path, str]:
    """A camera file with one episode, and the name of that episode's group."""
    rng = np.random.default_rng(steps)
    path = tmp_path / "images.h5"
    with EpisodeWriter.create(path, META_CAMERA) as writer:
        writer.commit(make_episode(rng, steps, images=frames(rng, steps)))
    with h5py.File(path, "r") as f:
        (name,) = [k for k in f if k.startswith("episode_")]
    return path, name


def test_a_changed_pixel_fails_the_checksum(tmp_path):
    path, name = one_episode_file(tmp_path, 10)
    with h5py.File(path, "r+") as f:
        f[name]["images"][3, 2, 2, 0] ^= 1
    with open_dataset(path) as ds:
        assert ds.verify() == [0]


@pytest.mark.parametrize(("meta", "images", "message"), [
    (META_CAMERA, None, "the file's camera needs images in every episode"),
    (META, "frames", "episode has images but the file has no camera"),
    (META_CAMERA, "small", "expected (11, 8, 12, 3) uint8"),
    (META_CAMERA, "float", "dtype float64, expected (11, 8, 12, 3) uint8"),
])  # fmt: skip
def test_episodes_that_do_not_match_the_camera_are_refused(tmp_path, meta, images, message):
    rng = np.random.default_rng(2)
    given = {None: None, "frames": frames(rng, 10),
             "small": frames(rng, 10, CameraSpec(6, 4)),
             "float": frames(rng, 10).astype(np.float64)}[images]  # fmt: skip
    with (EpisodeWriter.create(tmp_path / "x.h5", meta) as writer,
          pytest.raises(InvalidEpisodeError, match=re.escape(message))):  # fmt: skip
        writer.commit(make_episode(rng, 10, images=given))


def test_appending_with_another_camera_is_refused(tmp_path):
    path, _ = one_episode_file(tmp_path, 5)
    other = dataclasses.replace(META, camera=CameraSpec(24, 16, "side"))
    for meta, theirs in ((other, "24x16 side"), (META, "no camera")):
        expected = f"camera is 12x8 follow, this recording's {theirs}"
        with pytest.raises(IncompatibleDatasetError, match=expected):
            EpisodeWriter.append(path, meta)


def test_a_file_whose_camera_has_no_images_fails_validation(tmp_path):
    path, name = one_episode_file(tmp_path, 5)
    with h5py.File(path, "r+") as f:
        del f[name]["images"]
    with pytest.raises(SchemaError, match="missing dataset 'images'"):
        validate(path)
