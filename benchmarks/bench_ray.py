"""Ray against the local process pool on this machine: episodes per second, start-up, memory.

    .venv/bin/python benchmarks/bench_ray.py [--episodes 40] [--repeats 3] [--workers 2]
        [--results F.json]

Starts a one-node Ray cluster here (``ray start --head --block``, as a user would) and
times it until a client can connect; sums the resident memory of its processes at idle.
Then, alternating in the same run, ``--repeats`` times each: HumanoidWalk expert
episodes (20 s, random start phase, seeds 1000 on) through ``run_episodes`` with the local
pool and with ``--backend ray``, ``--workers`` workers each. Reports episodes per second
with the pool's start included (what one ``pipeline evaluate`` call pays) and on a pool
that is already running (a second batch on the same pool), and the Ray/local ratios.
Prints a table and writes ``benchmarks/results/bench_ray.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_ray.json"
RAY = Path(sys.executable).parent / "ray"
WALK = "sim/HumanoidWalk-v0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pgid: int) -> float:
    """Resident memory of every process in the process group, MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total / 1024


def start_head(port: int) -> tuple[subprocess.Popen, float]:
    """A head on 127.0.0.1, listening there only (Ray's local-only mode, also in this
    process, which imports Ray after main set it), and the seconds until a client connected
    to it."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = time.perf_counter()
    head = subprocess.Popen([str(RAY), "start", "--head", "--block", f"--port={port}",
                             "--node-ip-address=127.0.0.1", "--num-cpus=2",
                             "--include-dashboard=false",
                             f"--ray-client-server-port={free_port()}",
                             f"--temp-dir={temp_dir}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.05)
    import logging

    ray.init(address=f"127.0.0.1:{port}", logging_level=logging.ERROR, log_to_driver=False)
    return head, time.perf_counter() - start


def timed_batches(backend, tasks, workers: int) -> tuple[float, float]:
    """Seconds for ``tasks`` on a fresh pool (start included), then again on that pool."""
    import sim
    from pipeline.rollout.options import env_kwargs
    from pipeline.rollout.policies import ExpertPolicy
    from pipeline.rollout.workers import rollout_pool

    policy = ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[WALK]))
    start = time.perf_counter()
    with rollout_pool(WALK, env_kwargs(WALK, "random"), policy, workers,
                      backend=backend) as pool:  # fmt: skip
        pool.run(tasks)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        pool.run(tasks)
        warm = time.perf_counter() - start
    return cold, warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    from pipeline.rollout.cluster import LOCAL, LOCAL_ONLY_RAY, Backend

    os.environ[LOCAL_ONLY_RAY] = "0"  # before Ray is imported: everything on loopback
    import ray

    from pipeline.rollout.workers import EpisodeTask

    port = free_port()
    head, startup_s = start_head(port)
    try:
        time.sleep(5)  # let the prestarted idle workers settle
        idle_mb = rss_mb(head.pid)
        backend = Backend("ray", f"127.0.0.1:{port}")
        tasks = [EpisodeTask(1000 + i) for i in range(args.episodes)]
        runs: dict[str, list[tuple[float, float]]] = {"local": [], "ray": []}
        for repeat in range(args.repeats):
            for name, chosen in (("local", LOCAL), ("ray", backend)):
                runs[name].append(timed_batches(chosen, tasks, args.workers))
                print(f"repeat {repeat} {name}: {runs[name][-1]}", flush=True)
    finally:
        ray.shutdown()
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
    rates = {name: {"cold_eps": args.episodes / statistics.median(c for c, _ in r),
                    "warm_eps": args.episodes / statistics.median(w for _, w in r),
                    "cold_s": [c for c, _ in r], "warm_s": [w for _, w in r]}
             for name, r in runs.items()}  # fmt: skip
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, ray {ray.__version__}",
        "episodes": args.episodes, "workers": args.workers, "repeats": args.repeats,
        "ray_startup_s": startup_s, "ray_idle_rss_mb": idle_mb, "rates": rates,
        "ratio_cold": rates["ray"]["cold_eps"] / rates["local"]["cold_eps"],
        "ratio_warm": rates["ray"]["warm_eps"] / rates["local"]["warm_eps"],
    }  # fmt: skip
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"{args.episodes} HumanoidWalk expert episodes, {args.workers} workers, "
                  f"median of {args.repeats}; Ray head start-up {startup_s:.1f} s, "
                  f"{idle_mb:.0f} MB at idle")  # fmt: skip
    for column in ("backend", "episodes/s (pool start included)", "episodes/s (running pool)"):
        table.add_column(column, justify="right")
    for name, rate in rates.items():
        table.add_row(name, f"{rate['cold_eps']:.2f}", f"{rate['warm_eps']:.2f}")
    table.add_row("ray / local", f"{report['ratio_cold']:.2f}", f"{report['ratio_warm']:.2f}")
    Console(width=160).print(table)
    print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
