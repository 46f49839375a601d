"""Recording benchmarks: overhead vs the bare expert loop, workers, memory, size.

    .venv/bin/python benchmarks/bench_record.py [--quick]

- overhead: episodes/s of ``record()`` (workers=1, gzip, crash-safe journal and merges)
  over episodes/s of the bare expert rollout loop on the same env, same seeds, same run,
  each timed from loading the expert to the end (file closed), alternating the two sides
  twice and keeping the best of each (load from other processes is noise, not cost);
- workers: ``record()`` with 2 workers over 1 worker (pool start-up included, best of 2);
- memory: peak RSS of a ``pipeline record`` process recording 200 episodes over one
  recording 20 (HumanoidRun, 2 workers; each in a fresh process);
- size and commit cost: bytes on disk per 1000 steps and milliseconds per committed episode
  (building its compressed journal entry and writing it), gzip level 1 vs gzip level 4
  (the default) vs lzf vs uncompressed, per task.

Prints a table and writes ``benchmarks/results/bench_record.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

import sim
from pipeline.rollout.demonstration import attempt_seed
from pipeline.rollout.policies import ExpertPolicy
from pipeline.rollout.workers import EpisodeTask, rollout_pool
from pipeline.stages.record import RecordConfig, env_kwargs_of, record

WALK, RUN = "sim/HumanoidWalk-v0", "sim/HumanoidRun-v0"
RESULTS = Path(__file__).parent / "results" / "bench_record.json"
COMPRESSIONS = ("gzip:1", "gzip:4", "lzf", "none")


def _rates(start: float, end: float, episodes: int, steps: int) -> dict:
    seconds = end - start
    return {"episodes": episodes, "steps": steps, "seconds": seconds,
            "episodes_per_s": episodes / seconds, "steps_per_s": steps / seconds}  # fmt: skip


def bare_loop(env_id: str, episodes: int) -> dict:
    """The expert rollout loop alone: same env kwargs and seeds as the recording."""
    config = RecordConfig(out=Path("unused"), env_id=env_id)
    start = time.perf_counter()
    expert = ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[env_id]))
    with rollout_pool(env_id, env_kwargs_of(config), expert, 1) as pool:
        results = pool.run([EpisodeTask(attempt_seed(0, n)) for n in range(episodes)])
    return _rates(start, time.perf_counter(), episodes, sum(r.steps for r in results))


def recorded(
    env_id: str, episodes: int, workers: int, tmp: Path, compression: str = "gzip", tag: str = ""
) -> dict:
    """A full ``record()`` call, from loading the expert to closing the file (final merge
    included). Failed attempts are kept so both sides run the same episodes."""
    path = tmp / f"{env_id.split('/')[1]}-{workers}-{compression}{tag}.h5"
    path.unlink(missing_ok=True)
    config = RecordConfig(out=path, env_id=env_id, episodes=episodes, workers=workers,
                          keep_failed=True, compression=compression)  # fmt: skip
    start = time.perf_counter()
    summary = record(config)
    result = _rates(start, time.perf_counter(), summary.committed, summary.steps)
    result["bytes_per_1000_steps"] = 1000 * path.stat().st_size / summary.steps
    result["commit_ms"] = 1000 * summary.write_s / max(summary.committed, 1)
    return result


def best(runs: list[dict]) -> dict:
    """The fastest of repeated runs: on a shared machine, slowdowns are noise."""
    return max(runs, key=lambda r: r["episodes_per_s"])


def peak_rss_kb(episodes: int, tmp: Path) -> int:
    """Peak RSS of a fresh process that records ``episodes`` HumanoidRun episodes."""
    out = tmp / f"rss-{episodes}.h5"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipeline.stages.record import RecordConfig, record\n"
        f"record(RecordConfig(out=Path({str(out)!r}), env_id={RUN!r}, episodes={episodes}))\n"
        # VmHWM, not ru_maxrss: ru_maxrss survives fork+exec, so a child started from this
        # (TensorFlow-sized) process would report at least this process's peak.
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer episodes (smoke run)")
    args = parser.parse_args()
    n = {WALK: 4, RUN: 6} if args.quick else {WALK: 16, RUN: 24}
    rss_counts = (5, 20) if args.quick else (20, 200)
    sim.load_expert("humanoid_walk")  # pay TensorFlow's import once, outside the timings
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "tasks": {},
    }
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for env_id in (WALK, RUN):
            # Alternate the two sides and keep the best of each, so a burst of load from
            # other processes cannot land on one side only.
            bare_runs, rec_runs = [], []
            for _ in range(2):
                bare_runs.append(bare_loop(env_id, n[env_id]))
                rec_runs.append(recorded(env_id, n[env_id], 1, tmp))
            bare, rec1 = best(bare_runs), best(rec_runs)
            rec2 = best([recorded(env_id, n[env_id], 2, tmp) for _ in range(2)])
            stored = {c: recorded(env_id, 3, 1, tmp, c, "-size") for c in COMPRESSIONS}
            report["tasks"][env_id] = {
                "bare": bare, "record_1": rec1, "record_2": rec2,
                "overhead_ratio": rec1["episodes_per_s"] / bare["episodes_per_s"],
                "workers_ratio": rec2["episodes_per_s"] / rec1["episodes_per_s"],
                "bytes_per_1000_steps": {c: r["bytes_per_1000_steps"] for c, r in stored.items()},
                "commit_ms": {c: r["commit_ms"] for c, r in stored.items()},
            }  # fmt: skip
        small, large = (peak_rss_kb(k, tmp) for k in rss_counts)
    report["memory"] = {"episodes": rss_counts, "peak_rss_kb": [small, large],
                        "ratio": large / small}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    table = Table(title=f"recording benchmarks ({report['machine']})")
    for column in ("env", "bare eps/s", "record eps/s", "record/bare", "record 2 workers/1",
                   *(f"KB/1000 steps, ms/commit: {c}" for c in COMPRESSIONS)):  # fmt: skip
        table.add_column(column, justify="right")
    for env_id, r in report["tasks"].items():
        size, ms = r["bytes_per_1000_steps"], r["commit_ms"]
        table.add_row(env_id, f"{r['bare']['episodes_per_s']:.2f}",
                      f"{r['record_1']['episodes_per_s']:.2f}", f"{r['overhead_ratio']:.2f}",
                      f"{r['workers_ratio']:.2f}x",
                      *(f"{size[c] / 1e3:.0f}, {ms[c]:.1f}" for c in COMPRESSIONS))  # fmt: skip
    Console(width=180).print(table)
    m = report["memory"]
    print(f"peak RSS recording {m['episodes'][0]} vs {m['episodes'][1]} HumanoidRun episodes: "
          f"{m['peak_rss_kb'][0] / 1e3:.0f} MB vs {m['peak_rss_kb'][1] / 1e3:.0f} MB "
          f"(ratio {m['ratio']:.2f})")  # fmt: skip
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
