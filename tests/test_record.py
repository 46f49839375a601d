"""``pipeline record``: determinism across workers and resumes, noise injection, drops,
and bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import sim
from datasets import open_dataset
from pipeline.cli import main
from pipeline.stages.record import RecordConfig, record

WALK = "sim/HumanoidWalk-v0"
RUN = "sim/HumanoidRun-v0"
# Random start phases and 2.5 s episodes: some attempts fall (~1.5-2.1 s), most don't.
SHORT_WALK = {"env_id": WALK, "start_phase": "random", "episode_seconds": 2.5}


def fingerprint(path: Path) -> list[tuple[int, int, str]]:
    """(attempt, seed, checksum) of every episode, in id order."""
    with open_dataset(path) as ds:
        return [(i.attempt, i.seed, i.checksum) for i in ds.episode_infos()]


def drops(path: Path) -> list[tuple[int, int, str]]:
    with open_dataset(path) as ds:
        return [(d.attempt, d.seed, d.reason) for d in ds.dropped_attempts]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_same_episodes_whatever_the_number_of_workers(tmp_path):
    one = record(RecordConfig(out=tmp_path / "w1.h5", episodes=6, seed=3, **SHORT_WALK))
    two = record(RecordConfig(out=tmp_path / "w2.h5", episodes=6, seed=3, workers=2, **SHORT_WALK))
    assert one.committed == two.committed == 6
    assert one.dropped_fell > 0, "this seed is chosen so that some attempts fall"
    assert fingerprint(tmp_path / "w1.h5") == fingerprint(tmp_path / "w2.h5")
    assert drops(tmp_path / "w1.h5") == drops(tmp_path / "w2.h5")
    assert all(reason == "fell" for _, _, reason in drops(tmp_path / "w1.h5"))
    with open_dataset(tmp_path / "w1.h5") as ds:
        assert not any(info.fell for info in ds.episode_infos())
        attempts = sorted(
            [i.attempt for i in ds.episode_infos()] + [d.attempt for d in ds.dropped_attempts]
        )
        assert attempts == list(range(ds.next_attempt))  # no attempt skipped or repeated


def test_stored_episode_replays_in_the_simulation(tmp_path):
    """Observations, labels and rewards are what the env and expert really produce."""
    path = tmp_path / "run.h5"
    record(RecordConfig(out=path, env_id=RUN, episodes=1, seed=0))
    expert = sim.load_expert("humanoid_run")
    import gymnasium as gym

    env = gym.make(RUN)
    with open_dataset(path) as ds:
        ep = ds.episode(0)
        obs, _ = env.reset(seed=ep.info.seed)
        np.testing.assert_array_equal(obs, ep.observations[0])
        for t in range(50):
            np.testing.assert_array_equal(ep.actions[t], expert.act(obs).astype(np.float32))
            obs, reward, *_ = env.step(ep.actions[t])
            np.testing.assert_array_equal(obs, ep.observations[t + 1])
            assert reward == ep.rewards[t]
        assert ep.truncations[-1] and not ep.terminations.any()
        assert {"reward_progress", "distance"} <= set(ep.info_keys())
    env.close()


def test_noise_injection_stores_clean_labels_and_executed_actions(tmp_path):
    path = tmp_path / "dart.h5"
    record(RecordConfig(out=path, env_id=RUN, episodes=1, seed=1, noise=0.1))
    expert = sim.load_expert("humanoid_run")
    with open_dataset(path) as ds:
        assert ds.metadata.noise_scale == 0.1
        ep = ds.episode(0)
        obs, labels, executed = ep.observations[:-1], ep.actions, ep.executed_actions
        assert executed is not None and executed.shape == labels.shape
        # labels are the clean expert on the visited states; executed = label + noise
        np.testing.assert_allclose(labels, expert.act(obs).astype(np.float32), atol=1e-6)
        noise = (executed - labels) / expert.action_scale
        assert 0.08 < noise.std() < 0.12 and abs(noise.mean()) < 0.01


def test_keep_failed_keeps_falls(tmp_path):
    path = tmp_path / "all.h5"
    summary = record(RecordConfig(out=path, episodes=6, seed=3, keep_failed=True, **SHORT_WALK))
    assert summary.dropped_fell == 0 and summary.committed == 6
    with open_dataset(path) as ds:
        infos = ds.episode_infos()
        fell = [i for i in infos if i.fell]
        assert fell, "seed 3 gives falls among the first attempts"
        assert all(ds.episode(i.id).terminations[-1] for i in fell)


def test_append_continues_attempts_and_refuses_other_env(tmp_path, capsys):
    path = tmp_path / "walk.h5"
    record(RecordConfig(out=path, episodes=2, seed=3, **SHORT_WALK))
    before = fingerprint(path)
    record(RecordConfig(out=path, episodes=2, seed=3, mode="append", **SHORT_WALK))
    after = fingerprint(path)
    assert after[:2] == before and len(after) == 4
    assert after[2][0] > before[-1][0]  # attempt indices continue
    code, _, err = cli(
        capsys, "record", "--env", RUN, "--episodes", "1", "--out", str(path), "--append"
    )
    assert code == 2 and err.count("\n") == 1 and "error:" in err and RUN in err
    assert fingerprint(path) == after


def _observation_filters(path: Path) -> list[str | None]:
    """Each episode's observation compression (the walk's 2.5-s episodes: above 16 KiB)."""
    with h5py.File(path, "r") as f:
        groups = sorted((k for k in f if k.startswith("episode_")), key=lambda k: int(k[8:]))
        assert all(f[k]["observations"].nbytes >= 1 << 14 for k in groups)
        return [f[k]["observations"].compression for k in groups]


def test_appended_and_resumed_sessions_keep_their_own_compression(tmp_path, capsys):
    path = tmp_path / "walk.h5"
    args = ["--start-phase", "0", "--episode-seconds", "1", "--out", str(path)]
    assert cli(capsys, "record", "--episodes", "1", *args)[0] == 0
    assert cli(capsys, "record", "--episodes", "1", "--append", "--compression", "none",
               *args)[0] == 0  # fmt: skip
    assert cli(capsys, "record", "--episodes", "1", "--append", *args)[0] == 0
    assert _observation_filters(path) == ["gzip", None, "gzip"]  # the file's: gzip

    # A resumed session compresses as the session it continues (interrupted after 1 of 2).
    def interrupt(*_):
        raise KeyboardInterrupt

    summary = record(RecordConfig(out=path, episodes=2, seed=5, mode="append", compression="lzf",
                                  env_id=WALK, start_phase=0.0, episode_seconds=1.0),
                     on_episode=interrupt)  # fmt: skip
    assert summary.interrupted and summary.total_episodes == 4
    code, _, err = cli(capsys, "record", "--out", str(path), "--resume", "--compression", "none")
    assert code == 2 and "--compression: 'none' differs from the recording being resumed" in err
    assert cli(capsys, "record", "--out", str(path), "--resume")[0] == 0
    with open_dataset(path) as ds:
        assert ds.sessions[-1]["kind"] == "resume"
        assert ds.sessions[-1]["recording_args"]["compression"] == "lzf"
        assert ds.verify() == [] and len(ds) == 5
    assert _observation_filters(path) == ["gzip", None, "gzip", "lzf", "lzf"]
    code, _, _ = cli(capsys, "inspect", str(path), "--json", str(tmp_path / "i.json"))
    summary = json.loads((tmp_path / "i.json").read_text())["summary"]
    assert code == 0 and summary["compression"] == "gzip:4, none, lzf"


def _spawn_record(path: Path, *extra: str) -> subprocess.Popen:
    args = [
        "--episodes",
        "12",
        "--seed",
        "3",
        "--start-phase",
        "random",
        "--episode-seconds",
        "2.5",
    ]
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "record", "--out", str(path), *args, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_killed_and_resumed_recording_equals_uninterrupted(tmp_path):
    reference = tmp_path / "ref.h5"
    record(RecordConfig(out=reference, episodes=12, seed=3, **SHORT_WALK))
    path = tmp_path / "killed.h5"
    rng = np.random.default_rng(7)
    for kill in range(3):
        proc = (
            _spawn_record(path, "--workers", "2") if kill == 0 else _spawn_record(path, "--resume")
        )
        # Start-up (interpreter, imports) takes ~4 s on a quiet machine and much longer on a
        # loaded one: kill at a random moment after the file exists, not after a fixed time.
        deadline = time.monotonic() + 120
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.5, 3.0)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with h5py.File(path, "r"):
            pass  # the file opens after every kill
        assert fingerprint(path) == fingerprint(reference)[: len(fingerprint(path))]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "record", "--out", str(path), "--resume"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert fingerprint(path) == fingerprint(reference)
    assert drops(path) == drops(reference)


def test_resume_refuses_different_arguments(tmp_path, capsys):
    path = tmp_path / "walk.h5"
    record(RecordConfig(out=path, episodes=1, seed=3, **SHORT_WALK))
    code, _, err = cli(capsys, "record", "--out", str(path), "--resume", "--seed", "4")
    assert code == 2 and "--seed: 4 differs from the recording being resumed" in err


def test_non_finite_episode_is_rejected_and_counted(tmp_path, monkeypatch):
    import pipeline.rollout.workers as workers
    from pipeline.rollout.demonstration import record_demonstration

    def corrupt_every_other(env, expert, task, learner=None):
        episode = record_demonstration(env, expert, task, learner)
        if task.attempt % 2 == 1:
            episode.observations[3, 5] = np.nan
        return episode

    monkeypatch.setattr(workers, "record_demonstration", corrupt_every_other)
    path = tmp_path / "nan.h5"
    summary = record(RecordConfig(out=path, env_id=RUN, episodes=2, seed=0, episode_seconds=None))
    assert summary.committed == 2 and summary.rejected == 1
    with open_dataset(path) as ds:
        assert len(ds) == 2 and ds.verify() == []
        assert [d.attempt for d in ds.dropped_attempts] == [1]
        assert "non-finite" in ds.dropped_attempts[0].reason
        assert all(np.isfinite(ds.episode(i).observations[:]).all() for i in ds.episode_ids())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--episodes", "0"], "--episodes: must be >= 1, got 0"),
        (["--episodes", "-2"], "--episodes: must be >= 1, got -2"),
        (["--noise", "-0.1"], "--noise: must be a finite number >= 0"),
        (["--workers", "0"], "--workers: must be >= 1"),
        (["--env", "Nope-v0"], "--env: unknown environment 'Nope-v0'"),
        (["--expert", "humanoid_run"], "expert 'humanoid_run' does not act in"),
        (["--append", "--overwrite"], "--append and --overwrite exclude each other"),
        (["--resume"], "file does not exist"),
    ],
)
def test_bad_options(tmp_path, capsys, args, message):
    out = tmp_path / "x.h5"
    code, _, err = cli(capsys, "record", "--out", str(out), *args)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not out.exists()


def test_bad_output_paths(tmp_path, capsys, mounted_tmpfs):
    (tmp_path / "file").write_text("in the way")
    code, _, err = cli(capsys, "record", "--out", str(tmp_path / "file" / "x.h5"))
    assert code == 2 and "file is not a directory" in err and err.count("\n") == 1
    existing = tmp_path / "exists.h5"
    existing.write_bytes(b"precious")
    code, _, err = cli(capsys, "record", "--out", str(existing))
    assert code == 2 and "already exists; not overwriting it" in err
    assert existing.read_bytes() == b"precious"
    code, _, err = cli(capsys, "record", "--out", str(existing), "--append")
    assert code == 2 and err.count("\n") == 1 and "HDF5" in err
    assert existing.read_bytes() == b"precious"
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as directory:
        code, _, err = cli(capsys, "record", "--out", str(directory / "x.h5"), "--episodes", "1")
        assert code == 2 and err.count("\n") == 1 and ("not writable" in err or "read-only" in err)


def test_disk_full_keeps_committed_episodes(tmp_path, capsys, mounted_tmpfs):
    with mounted_tmpfs(tmp_path / "small", "size=1m") as directory:
        path = directory / "run.h5"
        code, _, err = cli(capsys, "record", "--env", RUN, "--episodes", "8", "--out", str(path))
        assert code != 0 and "Traceback" not in err
        assert err.count("\n") == 1 and "error:" in err, err
        with open_dataset(path) as ds:
            assert 1 <= len(ds) < 8
            assert ds.verify() == []


def test_inspect_reports_and_verifies(tmp_path, capsys):
    path = tmp_path / "walk.h5"
    record(RecordConfig(out=path, episodes=3, seed=3, **SHORT_WALK))
    report = tmp_path / "inspect.json"
    code, out, _ = cli(capsys, "inspect", str(path), "--verify", "--json", str(report))
    assert code == 0 and "checksums match" in out
    data = json.loads(report.read_text())
    assert data["summary"]["episodes"] == 3 and data["verify"]["ok"]
    assert len(data["summary"]["observation_min"]) == 197
    # corrupt one value of episode 1 in place: --verify names it and exits 1
    with h5py.File(path, "r+") as f:
        name = [k for k in f if k.startswith("episode_")][1]
        f[name]["actions"][0, 0] += 1.0
    code, out, _ = cli(capsys, "inspect", str(path), "--verify")
    assert code == 1 and "bad episode(s): [1]" in out


@pytest.mark.parametrize(
    "content", [b"", b"not an hdf5 file at all", b"\x89HDF\r\n\x1a\n" + b"\0" * 50]
)
def test_inspect_bad_files(tmp_path, capsys, content):
    path = tmp_path / "bad.h5"
    path.write_bytes(content)
    code, _, err = cli(capsys, "inspect", str(path))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and str(path) in err
    code, _, err = cli(capsys, "inspect", str(tmp_path / "missing.h5"))
    assert code == 2 and "missing.h5" in err


def test_inspect_other_schema_version(tmp_path, capsys):
    path = tmp_path / "walk.h5"
    record(RecordConfig(out=path, episodes=1, seed=0, env_id=RUN))
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 99
    code, _, err = cli(capsys, "inspect", str(path))
    assert code == 2 and "schema version" in err and err.count("\n") == 1


def test_export_import_minari_round_trip_via_cli(tmp_path, capsys):
    path = tmp_path / "walk.h5"
    record(RecordConfig(out=path, episodes=2, seed=3, **SHORT_WALK))
    code, out, err = cli(capsys, "export", str(path), "--out", str(tmp_path / "minari"))
    assert code == 0, err
    assert "humanoid/walk/expert-v0" in out
    back = tmp_path / "back.h5"
    code, _, err = cli(capsys, "import", "humanoid/walk/expert-v0", "--out", str(back),
                       "--datasets-root", str(tmp_path / "minari"))  # fmt: skip
    assert code == 0, err
    assert [c for *_, c in fingerprint(back)] == [c for *_, c in fingerprint(path)]
    code, _, err = cli(capsys, "export", str(path), "--out", str(tmp_path / "minari"))
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    code, _, err = cli(
        capsys, "export", str(path), "--out", str(tmp_path / "m2"), "--format", "csv"
    )
    assert code == 2 and "--format: unknown format 'csv'" in err
