"""Where episodes and trials run: this machine's process pool (the default) or an existing
Ray cluster (``--backend ray --ray-address ADDR``).

Ray is an optional extra (``pip install '.[ray]'``) and the multi-machine engine, not the
single-machine default: a one-node Ray cluster took 3.3 s to start and 820 MB at idle
(docs/benchmarks/speed-and-scaling.md). Ray's own client retries an unreachable address
for minutes, printing
warnings; :func:`parse_backend` opens a plain TCP connection first and fails in seconds
with one line. Results do not depend on the backend: an episode is a function of its task.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import logging
import os
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.core.errors import PipelineError

BACKENDS = ("local", "ray")
RAY_INSTALL = "pip install '.[ray]' (or 'humanoid-imitation[ray]')"
CONNECT_TIMEOUT_S = 3.0
RAY_CLIENT_SCHEME = "ray"


@dataclass(frozen=True)
class Backend:
    """Where work runs: ``local`` (process pool) or ``ray`` at ``address``."""

    kind: str = "local"
    """``local`` or ``ray``."""
    address: str | None = None
    """The Ray cluster: ``HOST:PORT`` of its head (GCS port, 6379 by default),
    ``ray://HOST:PORT`` (Ray Client) or ``auto`` (the cluster started on this machine)."""

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"

    def describe(self) -> str:
        return f"ray at {self.address}" if self.is_ray else "local processes"


LOCAL = Backend()


def parse_backend(kind: str, address: str | None) -> Backend:
    """``--backend`` and ``--ray-address`` checked: Ray installed and the head answering."""
    if kind not in BACKENDS:
        raise PipelineError(f"--backend: '{kind}' is not one of {', '.join(BACKENDS)}")
    if kind == "local":
        if address:
            raise PipelineError("--ray-address: only with --backend ray")
        return LOCAL
    address = (address or os.environ.get("RAY_ADDRESS") or "").strip()
    if not address:
        raise PipelineError("--backend ray: needs --ray-address HOST:PORT (or RAY_ADDRESS)")
    if importlib.util.find_spec("ray") is None:
        raise PipelineError(f"--backend ray: Ray is not installed; {RAY_INSTALL}")
    if address != "auto":
        check_ray_address(address)
    return Backend("ray", address)


def host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``ray://HOST:PORT`` split; one line if it is neither."""
    parsed = urllib.parse.urlsplit(address if "://" in address else f"//{address}")
    scheme_ok = parsed.scheme in ("", RAY_CLIENT_SCHEME)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not scheme_ok or not parsed.hostname or port is None or parsed.path not in ("", "/"):
        raise PipelineError(f"--ray-address {address}: expected HOST:PORT, ray://HOST:PORT "
                            "or auto")  # fmt: skip
    return parsed.hostname, port


def check_ray_address(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """One TCP connection to the head; any failure becomes one line within ``timeout_s``."""
    host, port = host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except TimeoutError:
        reason = f"no answer within {timeout_s:g} s"
    except OSError as error:
        reason = (error.strerror or str(error) or type(error).__name__).lower()
    else:
        return
    raise PipelineError(f"--ray-address {address}: Ray cluster not reachable ({reason}); "
                        "start it with 'ray start --head' or check the address")  # fmt: skip


@contextlib.contextmanager
def ray_connection(backend: Backend) -> Iterator[None]:
    """This process connected to ``backend``'s cluster for the block.

    A connection that already exists (a caller's, a test's) is used and left open;
    one made here is closed at the end, so the process is given back as it was."""
    import ray

    if ray.is_initialized():
        yield
        return
    with _local_only(backend.address):
        try:
            ray.init(address=backend.address, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise PipelineError(f"--ray-address {backend.address}: {message}") from None
        try:
            yield
        finally:
            ray.shutdown()


LOCAL_ONLY_RAY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Set to 0, Ray's local-only mode on Linux too: a head started with it and
``--node-ip-address=127.0.0.1`` listens on loopback only (its GCS, raylet, agents, client
server and workers), as everything this project starts on one machine should."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _local_only(address: str | None) -> Iterator[None]:
    """Connect to a head that listens on loopback only in Ray's local-only mode.

    Ray replaces a loopback head address by this machine's network address (so that the
    driver can be reached from other machines), where a head started in local-only mode
    (:data:`LOCAL_ONLY_RAY`) does not listen. When the head answers on loopback and not on
    that address, the driver runs in the same mode for the block (its own endpoints on
    loopback too); a head that listens on every interface is left to Ray's default."""
    import ray

    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if address is None or address == "auto" or constants is None:
        yield
        return
    parsed = urllib.parse.urlsplit(address if "://" in address else f"//{address}")
    if parsed.scheme or parsed.hostname is None or not is_loopback(parsed.hostname):
        yield
        return
    network = ray.util.get_node_ip_address()
    try:
        with socket.create_connection((network, parsed.port or 0), timeout=CONNECT_TIMEOUT_S):
            reachable = True
    except OSError:
        reachable = False
    if reachable or is_loopback(network):
        yield
        return
    saved = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False  # what LOCAL_ONLY_RAY=0 sets when Ray is imported
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved


def alive_nodes() -> int:
    """Nodes of the connected Ray cluster that are alive."""
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))


def check_cluster_tracking(tracking_uri: str | None, backend: Backend) -> None:
    """On a Ray cluster of several nodes MLflow must be a server: a file or SQLite store
    lives on one machine's disk, which the other nodes do not share (call connected)."""
    from pipeline.tracking.store import uri_scheme

    if tracking_uri is None or not backend.is_ray or uri_scheme(tracking_uri) not in (
        "", "file", "sqlite"
    ):  # fmt: skip
        return
    nodes = alive_nodes()
    if nodes > 1:
        raise PipelineError(f"--tracking-uri {tracking_uri}: a file or SQLite store cannot "
                            f"serve the {nodes} nodes of the Ray cluster at {backend.address}; "
                            "start 'mlflow server' and pass its http:// URI, or use "
                            "--no-track")  # fmt: skip


@contextlib.contextmanager
def cluster_session(backend: Backend, tracking_uri: str | None = None) -> Iterator[None]:
    """A command's work on ``backend``: connected to the cluster (Ray) with the tracking
    store checked against it; nothing to do for the local backend."""
    if not backend.is_ray:
        yield
        return
    with ray_connection(backend):
        check_cluster_tracking(tracking_uri, backend)
        yield
