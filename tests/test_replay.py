"""``pipeline inspect --replay``: recorded episodes re-simulated from their seeds and executed
actions match the stored states exactly on the recording machine; a changed action shows
where the drift starts; files that cannot be replayed are one line."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from pipeline.cli import main

RUN, WALK = "sim/HumanoidRun-v0", "sim/HumanoidWalk-v0"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def replayed(capsys, path: Path, tmp_path: Path, *extra: str) -> list[dict]:
    report = tmp_path / f"replay-{path.stem}.json"
    code, out, err = cli(capsys, "inspect", str(path), "--replay", "--json", str(report),
                         "--overwrite", *extra)  # fmt: skip
    assert code == 0, err
    assert "replay exactly" in out
    return json.loads(report.read_text())["replay"]


@pytest.fixture(scope="module")
def walk_dart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two walk episodes from random phases with DART noise: the executed actions differ
    from the stored labels, so the replay must use the executed ones."""
    path = tmp_path_factory.mktemp("replay") / "walk.h5"
    assert main(["record", "--env", WALK, "--episodes", "2", "--noise", "0.005",
                 "--episode-seconds", "1", "--workers", "1", "--out", str(path)]) == 0  # fmt: skip
    return path


@pytest.fixture(scope="module")
def run_dart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two run episodes recorded one after the other in one process, as the replay runs
    them: the run environment keeps a trace of earlier episodes
    (docs/benchmarks/reproducibility.md)."""
    path = tmp_path_factory.mktemp("replay") / "run.h5"
    assert main(["record", "--env", RUN, "--episodes", "2", "--noise", "0.1", "--workers", "1",
                 "--out", str(path)]) == 0  # fmt: skip
    return path


def test_both_tasks_replay_exactly_on_the_recording_machine(run_dart, walk_dart, tmp_path,
                                                            capsys):  # fmt: skip
    from datasets import open_dataset

    for path in (run_dart, walk_dart):
        results = replayed(capsys, path, tmp_path)
        assert results and all(r["exact"] and r["max_deviation"] == 0.0 for r in results)
        with open_dataset(path) as ds:  # every recorded step was replayed
            assert [r["steps"] for r in results] == [i.total_steps for i in ds.episode_infos()]
    assert len(replayed(capsys, run_dart, tmp_path, "--episodes", "1")) == 1


def test_a_changed_action_shows_where_the_drift_starts(walk_dart, tmp_path, capsys):
    changed = tmp_path / "changed.h5"
    changed.write_bytes(walk_dart.read_bytes())
    with h5py.File(changed, "r+") as f:
        group = f[sorted(k for k in f if k.startswith("episode_"))[0]]
        group["executed_actions"][5] += 0.05  # the action taken in state 5
    first, second = replayed(capsys, changed, tmp_path)
    assert first["first_step"] == 6 and first["max_deviation"] > 0 and not first["exact"]
    assert second["exact"]


def test_files_that_cannot_be_replayed_are_one_line(run_data, tmp_path, capsys):
    unseeded = tmp_path / "unseeded.h5"
    unseeded.write_bytes(run_data.read_bytes())
    with h5py.File(unseeded, "r+") as f:
        f[sorted(k for k in f if k.startswith("episode_"))[1]].attrs["seed"] = -1
    for args, message in (
        ([str(unseeded), "--replay"], "has no reset seed for episode 1"),
        ([str(run_data), "--episodes", "2"], "--episodes: only with --replay"),
        ([str(run_data), "--replay", "--episodes", "0"], "--episodes: must be at least 1"),
    ):
        code, _, err = cli(capsys, "inspect", *args)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert message in err
