"""Shared pytest fixtures."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path

import pytest
from mlflow_server import mlflow_server  # noqa: F401  (one real server per test session)

# Simulation worker processes spawned by tests inherit this (2 PyBullet processes on 2
# cores run ~3.5x slower without it).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Commands print at their log width when COLUMNS is unset; pytest-xdist's worker processes
# start with COLUMNS=80 (a plain run has none), which would narrow every table they print.
# Tests that need a width set it themselves.
os.environ.pop("COLUMNS", None)


@contextlib.contextmanager
def _mounted_tmpfs(directory: Path, options: str) -> Iterator[Path]:
    """A size-capped or read-only tmpfs at ``directory``; skip the test where not allowed."""
    directory.mkdir(exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture
def mounted_tmpfs() -> Callable[[Path, str], ContextManager[Path]]:
    """``mounted_tmpfs(directory, options)``: mount a tmpfs there for a ``with`` block."""
    return _mounted_tmpfs


@pytest.fixture(autouse=True)
def _isolated_mlflow_uri(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """MLflow's ``set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into os.environ;
    without this, one test's server URI would leak into the next test's default."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        # A test that fails (or tests a failure) inside a fluent run leaves it active, and
        # the next test's nested run would then hang under the wrong parent.
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def run_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four HumanoidRun expert demonstrations (1000 steps each), shared by the session."""
    from pipeline.stages.record import RecordConfig, record

    path = tmp_path_factory.mktemp("train-data") / "run.h5"
    record(RecordConfig(out=path, env_id="sim/HumanoidRun-v0", episodes=4, seed=0, workers=2))
    return path


@pytest.fixture(scope="session")
def walk_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short HumanoidWalk expert demonstrations (0.3 s from phase 0): a walk file for
    what needs the walk's env id and recipe, not its walking."""
    from pipeline.stages.record import RecordConfig, record

    path = tmp_path_factory.mktemp("walk") / "walk.h5"
    record(RecordConfig(out=path, env_id="sim/HumanoidWalk-v0", episodes=2, seed=0,
                        episode_seconds=0.3, start_phase="0"))  # fmt: skip
    return path
