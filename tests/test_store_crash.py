"""Crash safety of the episode store: a recorder SIGKILLed at any moment loses nothing.

The recorder is ``tests/store_driver.py``, which prints a line after each commit or drop
returns. After every kill the test checks the invariant the store promises. Let R be the
number of attempts the driver reported done (committed, dropped or rejected) before the
kill, counted from the first attempt of the file. Then:

1. the file opens with plain h5py, ``validate`` passes, and every episode in the file
   alone has a matching checksum (the file is never half-written);
2. the dataset (file + journal, as ``open_dataset`` shows it) has ``next_attempt`` equal
   to R or R + 1 (the attempt in flight at the kill is either wholly in or wholly out),
   and holds exactly the episodes of the committed attempts below it, in order, with ids
   0..n-1 and the checksums of the arrays the driver generated for them;
3. the episodes of the file alone are a prefix of those of the dataset;
4. a resumed recording starts exactly at that ``next_attempt`` (no attempt repeated or
   skipped), and after a clean close the journal is gone and the file holds everything.
"""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from datasets import open_dataset, validate
from datasets.store.checksum import episode_checksum
from datasets.store.episodes import prepare_arrays
from datasets.store.journal import journal_dir

try:
    from tests.store_driver import metadata, planned_episode
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    from store_driver import metadata, planned_episode

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("store_driver.py")
SEED = 7
# Frequent merges, so that kills often land inside one (the default policy merges rarely).
BUSY_MERGES = ["--max-pending", "3", "--merge-overhead", "0.5"]


@functools.cache
def expected(attempt: int) -> tuple[str, str | None]:
    """The planned outcome of an attempt and, for an episode, its checksum."""
    kind, episode = planned_episode(SEED, attempt)
    if kind != "ok":
        return kind, None
    return kind, episode_checksum(prepare_arrays(episode, metadata(SEED), "test"))


def driver(path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(path), "--seed", str(SEED), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> list[str]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out.splitlines()


def reported_next(lines: list[str], before: int) -> int:
    """The attempt after the last one the driver reported done."""
    for line in lines:
        word, *rest = line.split()
        if word in ("commit", "drop", "reject"):
            before = int(rest[0]) + 1
    return before


def check_dataset(path: Path, reported: int) -> int:
    """Check the invariant of the module docstring; return the dataset's next attempt."""
    with h5py.File(path, "r") as f:
        assert f.attrs["schema_version"] == 1
    validate(path)
    with open_dataset(path, include_journal=False) as alone:
        assert alone.verify() == []
        file_infos = alone.episode_infos()
    with open_dataset(path) as ds:
        assert ds.verify() == []
        next_attempt = ds.next_attempt
        assert reported <= next_attempt <= reported + 1, (reported, next_attempt)
        infos = ds.episode_infos()
        plan = [expected(a) for a in range(next_attempt)]
        assert [i.attempt for i in infos] == [a for a, p in enumerate(plan) if p[0] == "ok"]
        assert [i.id for i in infos] == list(range(len(infos)))
        assert [i.checksum for i in infos] == [p[1] for p in plan if p[0] == "ok"]
        dropped = [(d.attempt, d.reason.split(":")[0]) for d in ds.dropped_attempts]
        reasons = {"drop": "fell", "nan": "rejected"}
        assert dropped == [(a, reasons[p[0]]) for a, p in enumerate(plan) if p[0] != "ok"]
    assert infos[: len(file_infos)] == file_infos
    return next_attempt


def create(path: Path) -> None:
    finish(driver(path, "--create", "--episodes", "0"))


def resume_to_end(path: Path, next_attempt: int, extra: int = 3) -> None:
    with open_dataset(path) as ds:
        target = len(ds) + extra
    lines = finish(driver(path, "--episodes", str(target)))
    assert lines[0].split()[1] == str(next_attempt)
    assert lines[-1].startswith("done ")
    assert check_dataset(path, reported_next(lines, next_attempt)) == reported_next(lines, 0)
    with open_dataset(path) as ds:
        assert len(ds) == target and ds.pending_episodes == 0
    assert not journal_dir(path).exists()


def random_kills(directory: Path, kills: int, rng_seed: int, per_file: int = 8) -> dict:
    """Kill the driver ``kills`` times at random moments; check the dataset after each."""
    rng = np.random.default_rng(rng_seed)
    counts = {"kills": 0, "in_merge": 0, "files": 0}
    path, next_attempt = directory / "none.h5", 0
    for kill in range(kills):
        if kill % per_file == 0:  # a fresh file now and then keeps the test's I/O bounded
            path = directory / f"crash{kill}.h5"
            create(path)
            next_attempt = 0
            counts["files"] += 1
        proc = driver(path, "--episodes", "1000000", *BUSY_MERGES)
        time.sleep(rng.uniform(0.3, 1.4))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err
        lines = out.splitlines()
        if lines and lines[0].startswith("ready"):
            assert int(lines[0].split()[1]) == next_attempt  # resumed exactly there
        counts["kills"] += 1
        counts["in_merge"] += bool(lines) and lines[-1] == "merge-begin"
        next_attempt = check_dataset(path, reported_next(lines, next_attempt))
    resume_to_end(path, next_attempt)
    return counts


def test_random_sigkills(tmp_path: Path) -> None:
    counts = random_kills(tmp_path, kills=6, rng_seed=1)
    assert counts["kills"] == 6


@pytest.mark.slow
def test_many_random_sigkills(tmp_path: Path) -> None:
    counts = random_kills(tmp_path, kills=30, rng_seed=2)
    print(json.dumps(counts))
    assert counts["kills"] == 30 and counts["in_merge"] >= 1


FAULT_POINTS = [
    "episode:written",  # journal entry complete under its temporary name, not renamed
    "commit:after-journal",  # renamed (committed) but not yet reported
    "merge:after-copy",  # private copy of the file made
    "merge:appended",  # copy holds the new episodes, not yet fsynced or renamed
    "merge:published",  # copy renamed over the file, merged entries not yet deleted
    "merge:deleted-one",  # some merged entries deleted, others still there
]


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_sigkill_at_each_step_of_commit_and_merge(tmp_path: Path, point: str) -> None:
    path = tmp_path / "fault.h5"
    create(path)
    proc = driver(path, "--episodes", "50", "--crash-at", point, "--crash-after", "4",
                  "--max-pending", "3", "--merge-overhead", "0")  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    next_attempt = check_dataset(path, reported_next(out.splitlines(), 0))
    resume_to_end(path, next_attempt)


def test_sigkill_during_recovery_merge(tmp_path: Path) -> None:
    path = tmp_path / "recover.h5"
    create(path)
    next_attempt = 0
    for point in ("merge:appended", "merge:published", "merge:deleted-one"):
        # Die right after the 5th commit with everything still in the journal ...
        fill = ["--crash-at", "commit:after-journal", "--crash-after", "5", "--max-pending", "100"]
        proc = driver(path, "--episodes", "1000", *fill, "--merge-overhead", "0")
        out, _ = proc.communicate(timeout=60)
        next_attempt = check_dataset(path, reported_next(out.splitlines(), next_attempt))
        with open_dataset(path) as ds:
            assert ds.pending_episodes == 5
        # ... then die inside the recovery merge of the resuming writer, before "ready".
        proc = driver(path, "--episodes", "1000", "--crash-at", point)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL and not out
        assert check_dataset(path, next_attempt) == next_attempt
    resume_to_end(path, next_attempt)


def test_sigkill_while_creating_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "new.h5"
    proc = driver(path, "--create", "--episodes", "5", "--crash-at", "create:before-publish")
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not path.exists()
    lines = finish(driver(path, "--create", "--episodes", "2"))
    assert lines[-1].startswith("done ")
    assert check_dataset(path, reported_next(lines, 0)) == reported_next(lines, 0)
    assert not journal_dir(path).exists()


@pytest.mark.slow
def test_memory_does_not_grow_with_episodes(tmp_path: Path) -> None:
    """Peak RSS of writing 200 episodes is within 1.2x of writing 20."""
    rss = {}
    for n in (20, 200):
        lines = finish(driver(tmp_path / f"mem{n}.h5", "--create", "--episodes", str(n)))
        rss[n] = json.loads(lines[-1].removeprefix("done "))["max_rss_kb"]
    print(json.dumps(rss))
    assert rss[200] <= 1.2 * rss[20], rss
