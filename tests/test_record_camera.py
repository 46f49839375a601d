"""``pipeline record --camera WxH``: frames rendered in the workers, one per state, stored
with the episodes (the same for any worker count), shown by ``inspect``; bad sizes and
views are one line with nothing written."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from datasets import CameraSpec, open_dataset
from pipeline.cli import main

RUN = "sim/HumanoidRun-v0"
WALK = "sim/HumanoidWalk-v0"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _frames(path) -> list[np.ndarray]:
    with open_dataset(path) as ds:
        return [ds.episode(i).images[()] for i in ds.episode_ids()]


def test_run_frames_are_stored_per_state_and_the_same_for_any_worker_count(tmp_path, capsys):
    for workers in ("1", "2"):
        code, _, err = cli(capsys, "record", "--env", RUN, "--episodes", "2", "--workers",
                           workers, "--camera", "32x24", "--out",
                           str(tmp_path / f"w{workers}.h5"))  # fmt: skip
        assert code == 0, err
    with open_dataset(tmp_path / "w1.h5") as ds:
        assert ds.metadata.camera == CameraSpec(32, 24, "follow")
        # The camera is the file's own attribute; the simulation's arguments stay clean.
        assert "render_width" not in ds.metadata.env_kwargs
        for episode_id in ds.episode_ids():
            view = ds.episode(episode_id)
            assert view.images.shape == (view.info.total_steps + 1, 24, 32, 3)
            assert view.images.chunks == (1, 24, 32, 3)
        assert ds.verify() == []
    one, two = _frames(tmp_path / "w1.h5"), _frames(tmp_path / "w2.h5")
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    # The runner moves through the frame: consecutive frames differ, none is blank.
    frames = one[0]
    assert all(f.std() > 5 for f in frames[::100])
    assert np.abs(frames[1:].astype(int) - frames[:-1]).mean() > 0.1
    sheet = tmp_path / "sheet.png"
    code, out, _ = cli(capsys, "inspect", str(tmp_path / "w1.h5"), "--contact-sheet", str(sheet))
    assert code == 0 and "32x24 follow" in out and "KB per frame" in out
    # Two episodes as rows, six frames each, 2-pixel gutters; the first tile is frame 0.
    image = iio.imread(sheet)
    assert image.shape == (2 * 24 + 2, 6 * 32 + 5 * 2, 3)
    np.testing.assert_array_equal(image[:24, :32], one[0][0])


def test_a_contact_sheet_needs_camera_frames(run_data, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    code, _, err = cli(capsys, "inspect", str(run_data), "--contact-sheet", str(sheet))
    assert code == 2 and "holds no camera frames (record it with --camera WxH)" in err
    assert err.count("\n") == 1 and not sheet.exists()


def test_walk_side_view_differs_from_the_follow_view(tmp_path, capsys):
    for view in ("follow", "side"):
        code, _, err = cli(capsys, "record", "--env", WALK, "--episodes", "1",
                           "--episode-seconds", "0.5", "--start-phase", "0", "--camera",
                           "24x24", "--camera-view", view, "--out",
                           str(tmp_path / f"{view}.h5"))  # fmt: skip
        assert code == 0, err
    (follow,), (side,) = _frames(tmp_path / "follow.h5"), _frames(tmp_path / "side.h5")
    assert follow.shape == side.shape and follow.shape[1:] == (24, 24, 3)
    assert np.abs(follow.astype(int) - side).mean() > 1.0


@pytest.mark.parametrize(("args", "message"), [
    (["--camera", "84"], "--camera: '84' is not WIDTHxHEIGHT, e.g. 84x84"),
    (["--camera", "4x84"], "--camera: 4x84 is out of range; each side must be 8-320 pixels"),
    (["--camera", "84x400"], "each side must be 8-320 pixels"),
    (["--camera", "84x84", "--camera-view", "top"], "--camera-view: 'top' is not one of"),
])  # fmt: skip
def test_bad_camera_options_are_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "x.h5"
    code, _, err = cli(capsys, "record", "--env", RUN, "--episodes", "1", "--out", str(out),
                       *args)  # fmt: skip
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists()


def test_minari_export_keeps_the_frames_and_import_restores_them(tmp_path, capsys):
    source, back, root = tmp_path / "cam.h5", tmp_path / "back.h5", tmp_path / "minari"
    code, _, err = cli(capsys, "record", "--env", RUN, "--episodes", "1", "--camera", "16x12",
                       "--camera-view", "side", "--out", str(source))  # fmt: skip
    assert code == 0, err
    code, _, err = cli(capsys, "export", str(source), "--out", str(root))
    assert code == 0, err
    code, _, err = cli(capsys, "import", "humanoid/run/expert-v0", "--datasets-root", str(root),
                       "--out", str(back))  # fmt: skip
    assert code == 0, err
    with open_dataset(back) as ds:
        assert ds.metadata.camera == CameraSpec(16, 12, "side")
        assert ds.verify() == []
    (original,), (restored,) = _frames(source), _frames(back)
    np.testing.assert_array_equal(restored, original)
