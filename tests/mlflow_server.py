"""A real ``mlflow server`` on a free localhost port, for tests that track over HTTP.

Use the session fixture::

    try:
        from tests.mlflow_server import mlflow_server  # noqa: F401 (a fixture)
    except ImportError:
        from mlflow_server import mlflow_server  # noqa: F401

    def test_something(mlflow_server: str) -> None: ...  # "http://127.0.0.1:<port>"

or :class:`MlflowServer` as a context manager outside pytest. The server keeps runs in a
SQLite file and artifacts in a local directory it serves itself (``--serve-artifacts``), so
clients upload and download artifacts over HTTP, as against a shared server.

The server runs in its own process group (``mlflow server`` starts a uvicorn child); stopping
it signals the whole group, waits, and kills what is left, so no process outlives the test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Runs first in the server's process, then becomes ``mlflow server`` by exec: asks Linux to
# SIGTERM it when the test process dies (``mlflow server`` forwards SIGTERM to its uvicorn
# child), so even a killed pytest leaves no server behind. This replaces ``preexec_fn``, which
# is unsafe in a process with threads (TensorFlow starts many).
_LAUNCHER = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit("test process is gone")
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1.0) as response:
            return response.status == 200
    except OSError:
        return False


class MlflowServer:
    """``mlflow server`` with a SQLite backend and served local artifacts under ``root``."""

    def __init__(self, root: Path, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.root = Path(root)
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "server.log"

    @property
    def uri(self) -> str:
        """The tracking URI clients use: ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The command line (``python -m mlflow server ...``) for the current port."""
        return [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--backend-store-uri", f"sqlite:///{(self.root / 'mlflow.db').resolve()}",
            "--serve-artifacts",
            "--artifacts-destination", str((self.root / "artifacts").resolve()),
            "--workers", "1",
        ]  # fmt: skip

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MLFLOW_TRACKING_URI", None)
        env.update(
            # No usage telemetry to the internet.
            MLFLOW_DISABLE_TELEMETRY="true",
            # The job runner (huey consumers, GenAI jobs) adds 7 processes and ~10 s of start-up
            # on two cores; tracking does not need it.
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        )
        return env

    def start(self) -> str:
        """Start the server and wait until ``/health`` answers; return its URI.

        A port taken between choosing and binding it is retried on another port.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *self.command()[1:]],
                    cwd=self.root,
                    env=self._environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_healthy():
                return self.uri
            port_taken = "address already in use" in self.log_tail().lower()
            self.stop()
            if not port_taken:
                break
        raise RuntimeError(
            f"mlflow server did not become healthy within {self.start_timeout_s:g} s; "
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def _wait_healthy(self) -> bool:
        """Poll ``/health`` until it answers, the server exits, or the timeout passes."""
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _healthy(self.uri):
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL whatever is left after a while."""
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the group id is the leader's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_S)
        # The leader may be gone while its uvicorn child is still shutting down.
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(group):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's output."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _group_alive(group: int) -> bool:
    """Whether any process of the process group ``group`` still exists."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a real ``mlflow server`` shared by the session's tests; stopped at the end."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    uri = server.start()
    try:
        yield uri
    finally:
        server.stop()
