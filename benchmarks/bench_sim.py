"""Simulation benchmarks: expert rollout speed, 2 workers vs 1 process, rendering, video.

    .venv/bin/python benchmarks/bench_sim.py [--quick]

Prints a table and writes ``benchmarks/results/bench_sim.json``. Every ratio compares
two measurements taken in the same run, because these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import gymnasium as gym
from rich.console import Console
from rich.table import Table

import sim
from pipeline.rollout.episodes import run_episode
from pipeline.rollout.policies import ExpertPolicy
from pipeline.rollout.video import VideoWriter
from pipeline.rollout.workers import EpisodeTask, rollout_pool

WALK, RUN = "sim/HumanoidWalk-v0", "sim/HumanoidRun-v0"
RESULTS = Path(__file__).parent / "results" / "bench_sim.json"


def single_process_speed(env_id: str, policy: ExpertPolicy, kwargs: dict, episodes: int) -> dict:
    """Control steps per second of the expert in the loop, one process."""
    env = gym.make(env_id, **kwargs)
    run_episode(env, policy, seed=10_000)  # warm-up (first reset, caches)
    steps, start = 0, time.perf_counter()
    for seed in range(episodes):
        steps += run_episode(env, policy, seed).steps
    elapsed = time.perf_counter() - start
    env.close()
    return {"steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed}


def pool_speed(
    env_id: str, policy: ExpertPolicy, kwargs: dict, episodes: int, workers: int
) -> dict:
    """Throughput of a warm WorkerPool running whole episodes."""
    start = time.perf_counter()
    with rollout_pool(env_id, kwargs, policy, workers) as pool:
        pool.run([EpisodeTask(10_000 + i) for i in range(workers)])  # warm every worker
        warm = time.perf_counter()
        results = pool.run([EpisodeTask(i) for i in range(episodes)])
        end = time.perf_counter()
    steps = sum(r.steps for r in results)
    return {
        "steps": steps,
        "seconds": end - warm,
        "steps_per_s": steps / (end - warm),
        "startup_s": warm - start,
    }


def render_cost(env_id: str, policy: ExpertPolicy, kwargs: dict, steps: int) -> dict:
    """Milliseconds per 320x240 frame, and a rollout rendering every step with and without
    encoding to MP4 (the encoding overhead is their ratio)."""
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)

    def rollout(writer: VideoWriter | None) -> tuple[float, float]:
        obs, _ = env.reset(seed=0)
        render_s, start = 0.0, time.perf_counter()
        for _ in range(steps):
            obs, _, terminated, truncated, _ = env.step(policy.act(obs))
            t0 = time.perf_counter()
            frame = env.render()
            render_s += time.perf_counter() - t0
            if writer:
                writer.append(frame)
            if terminated or truncated:
                obs, _ = env.reset(seed=0)
        return time.perf_counter() - start, render_s

    rollout(None)  # warm-up
    plain_s, render_s = rollout(None)
    with tempfile.TemporaryDirectory() as tmp:
        with VideoWriter(Path(tmp) / "bench.mp4", fps=30) as writer:
            t0 = time.perf_counter()
            video_s, _ = rollout(writer)
        video_total_s = time.perf_counter() - t0  # includes flushing the encoder at close
        size = (Path(tmp) / "bench.mp4").stat().st_size
    env.close()
    return {
        "frame_ms": 1000 * render_s / steps,
        "rollout_render_s": plain_s,
        "rollout_render_encode_s": video_total_s,
        "encode_overhead": video_total_s / plain_s - 1.0,
        "video_bytes": size,
        "steps": steps,
        "loop_s_without_close": video_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer episodes (smoke run)")
    args = parser.parse_args()
    scale = 1 if args.quick else 3
    walk_kwargs = {"start_phase": 0.0}
    experts = {WALK: ExpertPolicy(sim.load_expert("humanoid_walk")),
               RUN: ExpertPolicy(sim.load_expert("humanoid_run"))}  # fmt: skip
    kwargs = {WALK: walk_kwargs, RUN: {}}
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "tasks": {},
    }
    for env_id in (WALK, RUN):
        policy, kw = experts[env_id], kwargs[env_id]
        single = single_process_speed(env_id, policy, kw, episodes=2 * scale)
        one = pool_speed(env_id, policy, kw, episodes=4 * scale, workers=1)
        two = pool_speed(env_id, policy, kw, episodes=4 * scale, workers=2)
        render = render_cost(env_id, policy, kw, steps=150 * scale)
        report["tasks"][env_id] = {
            "single_process": single,
            "pool_1": one,
            "pool_2": two,
            "speedup_2_workers": two["steps_per_s"] / one["steps_per_s"],
            "render": render,
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    table = Table(title=f"simulation benchmarks ({report['machine']})")
    for column in ("env", "steps/s 1 proc", "steps/s 2 workers", "2 workers / 1",
                   "pool start s", "frame ms 320x240", "video encode overhead"):  # fmt: skip
        table.add_column(column, justify="right")
    for env_id, r in report["tasks"].items():
        table.add_row(
            env_id,
            f"{r['single_process']['steps_per_s']:.0f}",
            f"{r['pool_2']['steps_per_s']:.0f}",
            f"{r['speedup_2_workers']:.2f}x",
            f"{r['pool_2']['startup_s']:.1f}",
            f"{r['render']['frame_ms']:.1f}",
            f"{100 * r['render']['encode_overhead']:+.0f}%",
        )
    Console(width=140).print(table)
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
