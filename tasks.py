#!/usr/bin/env python3
"""Developer tasks that need nothing but Python 3.10+ and pip.

    python3 tasks.py demo    # install into .venv, record + train + evaluate a walking policy
    python3 tasks.py test    # install into .venv (with dev tools), lint, run the test suite
    python3 tasks.py bench   # slow tests and the benchmarks

The virtual environment lives in ``.venv`` (this project's ``datasets`` package shares
its import name with Hugging Face's, so it must not share an environment with it). The
install is skipped when ``pyproject.toml`` has not changed since the last one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
# The tests start real Ray clusters on this machine (tests/test_ray_backend.py) and export
# policies to every format (tests/test_policy_export.py).
TEST_EXTRAS = "dev,ray,export"


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    target = f".[{extras}]" if extras else "."
    for cmd in ((PY, "-m", "pip", "install", "-q", "--upgrade", "pip"),
                (PY, "-m", "pip", "install", "-q", "-e", target)):  # fmt: skip
        if run(*cmd) != 0:
            sys.exit(f"tasks.py: installing {target} into {VENV} failed")
    stamp.write_text(digest)


def demo() -> int:
    ensure_venv("")
    # Record walking demonstrations, train the default policy, evaluate it against the
    # expert on held-out seeds: the product's main job, on its embedded defaults.
    return run(BIN / "pipeline", "quickstart", "--out", ROOT / "outputs" / "quickstart")


def lint() -> int:
    ensure_venv(TEST_EXTRAS)
    rc = run(BIN / "ruff", "check", ".")
    rc = rc or run(BIN / "ruff", "format", "--check", ".")
    return rc or run(BIN / "lint-imports")


def test() -> int:
    ensure_venv(TEST_EXTRAS)
    rc = lint()
    if rc:
        return rc
    # Two or more test processes (pytest-xdist): 10.5 min instead of 14.6 on 2 cores. The
    # tests that start Ray share one process (their xdist_group). pytest's own exit code is
    # returned as is (5 = no tests collected).
    processes = str(min(4, os.cpu_count() or 1))
    return run(
        PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", processes, "--dist", "loadgroup"
    )


def bench() -> int:
    ensure_venv(TEST_EXTRAS)
    rc = run(PY, "-m", "pytest", "-q", "-m", "slow", "-p", "no:cacheprovider")
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        rc = run(PY, script) or rc
    return rc


TASKS = {"demo": demo, "test": test, "lint": lint, "bench": bench}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in TASKS:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(TASKS)}}}")
    sys.exit(TASKS[sys.argv[1]]())
