"""Ray clusters on this machine for tests, listening on loopback only.

``ray start --head --node-ip-address=127.0.0.1`` alone is not enough on Linux: Ray
replaces a loopback node address by the machine's network address and then listens on
every interface (its GCS, raylet and client server; the runtime env agent on the network
address). In Ray's local-only mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, what Ray does on
macOS and Windows) it keeps 127.0.0.1 and listens there only; the pipeline connects to such
a head in the same mode (``pipeline.rollout.cluster``).

Use :func:`start_head` (``ray start --head``, as a user would) or :func:`start_two_nodes`
(``ray.cluster_utils.Cluster``, a head and a worker node) as context managers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline.rollout.cluster import LOCAL_ONLY_RAY

RAY = Path(sys.executable).parent / "ray"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _wait_for(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the Ray head did not open port {port} within {timeout_s} s")


@contextlib.contextmanager
def start_head(num_cpus: int = 2) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A one-node Ray cluster on loopback: ``(HOST:PORT of its head, the head process)``.

    The head's daemons share its process group; leaving the block stops them all."""
    port = free_port()
    # Short: Ray's socket paths inside it must stay under the OS limit.
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           LOCAL_ONLY_RAY: "0"}  # fmt: skip
    head = subprocess.Popen([str(RAY), "start", "--head", "--block", f"--port={port}",
                             f"--node-ip-address={LOOPBACK}", f"--num-cpus={num_cpus}",
                             "--include-dashboard=false",
                             f"--ray-client-server-port={free_port()}",
                             f"--temp-dir={temp_dir}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        _wait_for(port, 60)
        yield f"{LOOPBACK}:{port}", head
    finally:
        # A SIGTERM lets the head stop its daemons.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:  # measured: it may not stop within 30 s
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


@contextlib.contextmanager
def start_two_nodes() -> Iterator[str]:
    """A head and a worker node (one CPU each) on loopback, started in this process with
    ``ray.cluster_utils.Cluster``: the head's ``HOST:PORT``."""
    from ray.cluster_utils import Cluster

    loopback = {"node_ip_address": LOOPBACK, "num_cpus": 1}
    cluster = Cluster(initialize_head=True, connect=False, head_node_args=loopback)
    try:
        cluster.add_node(**loopback)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()
