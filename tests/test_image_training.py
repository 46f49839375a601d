"""Camera frames as training input: streamed from the file beside the observations (frame
stacks never cross episodes), augmented in the training split only with a seeded RNG of
their own, and fed to ``tf.data`` as the policy's named inputs."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from datasets import CameraSpec, DatasetMetadata, Episode, EpisodeWriter, SpaceSpec, open_dataset
from datasets.store.errors import DatasetError
from datasets.training.augment import ImageAugmenter, random_brightness, random_shift
from datasets.training.epochs import BlockCache, in_memory_dataset, iter_batches

LENGTHS = [30, 55, 12, 41]
CAMERA = CameraSpec(6, 4, "follow")


def frame_code(frames: np.ndarray) -> list[tuple[int, int]]:
    """(episode, step) that a synthetic frame encodes in its top-left pixel."""
    return [(int(f[0, 0, 0]), int(f[0, 0, 1])) for f in frames.reshape(-1, 4, 6, 3)]


def write_frames(path: Path, camera: CameraSpec | None = CAMERA) -> Path:
    """Episode e, step t: observation (e, t, ...), action (e, t), frame pixels (e, t, 7)."""
    meta = DatasetMetadata(env_id="test/Synthetic-v0", observation_space=SpaceSpec.unbounded((3,)),
                           action_space=SpaceSpec.unbounded((2,)), camera=camera)  # fmt: skip
    with EpisodeWriter.create(path, meta, durable=False, compression="gzip") as writer:
        for e, steps in enumerate(LENGTHS):
            t = np.arange(steps + 1)
            obs = np.stack([np.full(steps + 1, e), t, np.zeros(steps + 1)], 1).astype(np.float32)
            images = None
            if camera is not None:
                images = np.zeros((steps + 1, 4, 6, 3), dtype=np.uint8)
                images[..., 0], images[..., 1], images[..., 2] = e, t[:, None, None], 7
            truncations = np.zeros(steps, dtype=bool)
            truncations[-1] = True
            writer.commit(Episode(observations=obs, actions=obs[:-1, :2], rewards=np.zeros(steps),
                                  terminations=np.zeros(steps, dtype=bool),
                                  truncations=truncations, images=images, seed=e))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def framed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_frames(tmp_path_factory.mktemp("frames") / "frames.h5")


def batches(path: Path, **kw) -> list[tuple[np.ndarray, ...]]:
    settings = {"batch_size": 16, "shuffle_buffer": 40, "block_steps": 10, "cycle_length": 2}
    with open_dataset(path) as ds:
        return list(iter_batches(ds, list(range(len(LENGTHS))), **{**settings, **kw}))


@pytest.mark.parametrize("history", [1, 3])
def test_each_sample_carries_the_frame_of_its_own_state(framed, history):
    got = batches(framed, images=True, history=history, seed=4)
    assert all(len(batch) == 3 for batch in got)
    obs = np.concatenate([b[0] for b in got])
    frames = np.concatenate([b[1] for b in got])
    assert frames.dtype == np.uint8
    assert frames.shape[1:] == ((4, 6, 3) if history == 1 else (history, 4, 6, 3))
    latest = obs if history == 1 else obs[:, -1]
    newest = frames if history == 1 else frames[:, -1]
    assert frame_code(newest) == [(int(e), int(t)) for e, t, _ in latest]
    assert sorted(frame_code(newest)) == sorted((e, t) for e, n in enumerate(LENGTHS)
                                                for t in range(n))  # fmt: skip
    if history > 1:  # the stack is the last K states of the same episode, start repeated
        for window, o in zip(frames, obs, strict=True):
            e, t = int(o[-1, 0]), int(o[-1, 1])
            expected = [(e, max(0, t - k)) for k in range(history - 1, -1, -1)]
            assert frame_code(window) == expected


def test_turning_frames_on_changes_neither_order_nor_observations(framed):
    plain = batches(framed, seed=2)
    framed_batches = batches(framed, seed=2, images=True)
    for (obs, act), (obs2, _, act2) in zip(plain, framed_batches, strict=True):
        np.testing.assert_array_equal(obs, obs2)
        np.testing.assert_array_equal(act, act2)


def test_in_memory_frames_equal_the_stream(framed):
    x, frames, y = in_memory_dataset(framed, [0, 2], history=2, images=True)
    assert frames.shape == (LENGTHS[0] + LENGTHS[2], 2, 4, 6, 3) and len(y) == len(frames)
    assert frame_code(frames[:, -1]) == [(int(e), int(t)) for e, t, _ in x[:, -1]]
    streamed = batches(framed, images=True, history=2, training=False)
    assert sum(len(b[0]) for b in streamed) == sum(LENGTHS)


def test_the_cache_keeps_frames_within_its_budget(framed):
    want = batches(framed, images=True, seed=1)
    small = BlockCache(budget_bytes=8_000)  # a few blocks of frames only
    for _ in range(2):
        got = batches(framed, images=True, seed=1, cache=small)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a[1], b[1])
    assert 0 < small.used_bytes <= 8_000 and small.hits > 0


def test_image_augmentation_is_seeded_training_only_and_leaves_the_rest_alone(framed):
    augmenter = ImageAugmenter(shift=1, brightness=0.3)
    plain = batches(framed, images=True, seed=3)
    first = batches(framed, images=True, seed=3, image_augmenter=augmenter)
    again = batches(framed, images=True, seed=3, image_augmenter=augmenter)
    for a, b, c in zip(plain, first, again, strict=True):
        np.testing.assert_array_equal(a[0], b[0])  # observations untouched
        np.testing.assert_array_equal(b[1], c[1])  # same seed, same frames
        assert b[1].dtype == np.uint8
    changed = np.concatenate([b[1] for b in first]) != np.concatenate([a[1] for a in plain])
    assert changed.any()
    with pytest.raises(ValueError, match="training split only"):
        batches(framed, images=True, training=False, image_augmenter=augmenter)
    with pytest.raises(ValueError, match="images=True"):
        batches(framed, image_augmenter=augmenter)


def test_shift_moves_whole_stacks_and_repeats_the_border():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (50, 2, 5, 7, 3), dtype=np.uint8)
    moved = random_shift(frames, 2, np.random.default_rng(9))
    dy, dx = np.random.default_rng(9).integers(-2, 3, size=(2, 50))
    for i in range(50):
        rows = np.clip(np.arange(5) + dy[i], 0, 4)
        cols = np.clip(np.arange(7) + dx[i], 0, 6)
        for k in range(2):  # both frames of the stack by the same offset
            np.testing.assert_array_equal(moved[i, k], frames[i, k][rows][:, cols])
    assert (dy != 0).any() and (dx != 0).any()
    np.testing.assert_array_equal(random_shift(frames, 0, rng), frames)


def test_brightness_scales_each_sample_by_one_factor_within_range():
    frames = np.full((400, 2, 3, 3, 3), 100, dtype=np.uint8)
    frames[:, :, 0, 0, 0] = 250  # clipped at 255 when brightened
    out = random_brightness(frames, 0.2, np.random.default_rng(1))
    values = out[:, :, 1, 1, 1].astype(int)
    assert (values[:, 0] == values[:, 1]).all()  # one factor per sample, stack included
    assert values.min() >= 80 and values.max() <= 120 and len(set(values[:, 0])) > 20
    assert out.max() == 255 and out.dtype == np.uint8
    with pytest.raises(ValueError, match="brightness"):
        ImageAugmenter(brightness=1.0)


def test_frames_from_a_file_without_a_camera_are_refused(tmp_path):
    plain = write_frames(tmp_path / "plain.h5", camera=None)
    with pytest.raises(DatasetError, match="no camera frames"):
        batches(plain, images=True)
    with pytest.raises(DatasetError, match="no camera frames"):
        in_memory_dataset(plain, [0], images=True)


def test_tf_dataset_gives_the_inputs_the_policy_takes(framed):
    from datasets.training.tfdata import make_tf_dataset

    ids = list(range(len(LENGTHS)))
    both = make_tf_dataset(framed, ids, batch_size=8, inputs="image+state", history=2)
    x, y = next(iter(both))
    assert set(x) == {"image", "observation"}
    assert x["image"].dtype.name == "uint8" and tuple(x["image"].shape) == (8, 2, 4, 6, 3)
    assert tuple(x["observation"].shape) == (8, 2, 3)
    frames, y = next(iter(make_tf_dataset(framed, ids, batch_size=8, inputs="image")))
    assert tuple(frames.shape) == (8, 4, 6, 3) and tuple(y.shape) == (8, 2)
    with pytest.raises(ValueError, match="inputs must be one of"):
        make_tf_dataset(framed, ids, batch_size=8, inputs="pixels")
