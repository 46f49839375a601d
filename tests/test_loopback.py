"""One machine means loopback: what the suite starts on this machine (Ray heads, Ray's
two-node test cluster, the MLflow server) listens on 127.0.0.1 only, and the pipeline talks
to it there. Each test starts the server as the suite does (``tests/ray_cluster.py``,
``tests/mlflow_server.py``), makes it do some work, and lists the listening sockets of
every process it started."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import pytest

ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install '.[ray]')")
psutil = pytest.importorskip("psutil", reason="psutil ships with Ray")

from ray_cluster import start_head, start_two_nodes  # noqa: E402

from pipeline.rollout.cluster import Backend, ray_connection  # noqa: E402

# One xdist worker runs every test that starts Ray (see tests/test_ray_backend.py). A driver
# that looks for the head at another address retries for minutes: fail in 3 instead.
pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.timeout(180)]


def _listening(processes: Iterable[psutil.Process]) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every TCP socket the processes listen on."""
    found = []
    for process in processes:
        try:
            name = process.name()
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:  # a worker that finished meanwhile
            continue
        found += [(name, c.laddr.ip, c.laddr.port) for c in connections
                  if c.status == psutil.CONN_LISTEN]  # fmt: skip
    return found


def _loopback(address: str) -> bool:
    """127.0.0.1, also as IPv6 sees it (``::ffff:127.0.0.1``)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip == ipaddress.ip_address("127.0.0.1")


def _work(address: str) -> None:
    """Connect as the pipeline does and run tasks, so that Ray starts its workers."""

    @ray.remote
    def twice(x: int) -> int:
        return 2 * x

    with ray_connection(Backend("ray", address)):
        assert ray.get([twice.remote(i) for i in range(4)]) == [0, 2, 4, 6]
        node_ips = {node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
        sockets = _listening([psutil.Process(), *psutil.Process().children(recursive=True)])
    assert node_ips == {"127.0.0.1"}
    _assert_loopback(sockets)


def _assert_loopback(sockets: list[tuple[str, str, int]]) -> None:
    assert sockets, "nothing listens: the check would pass for nothing"
    elsewhere = [s for s in sockets if not _loopback(s[1])]
    assert not elsewhere, f"listening beyond 127.0.0.1: {elsewhere}"


def test_the_suites_ray_head_listens_on_loopback_only():
    with start_head(num_cpus=1) as (address, head):
        assert address.startswith("127.0.0.1:")
        _work(address)
        # Its own daemons too (GCS, raylet, agents, client server), by the head's tree.
        root = psutil.Process(head.pid)
        _assert_loopback(_listening([root, *root.children(recursive=True)]))


def test_the_suites_two_node_cluster_listens_on_loopback_only():
    with start_two_nodes() as address:
        assert address.startswith("127.0.0.1:")
        _work(address)


def test_the_suites_mlflow_server_listens_on_loopback_only(mlflow_server):
    """The session's server (and whatever else this test process started) on loopback."""
    assert mlflow_server.startswith("http://127.0.0.1:")
    port = int(mlflow_server.rsplit(":", 1)[1])
    sockets = _listening(psutil.Process().children(recursive=True))
    assert port in {s[2] for s in sockets}, f"no process of this session listens on {port}"
    _assert_loopback(sockets)
