"""Replay of recorded demonstrations on the machine that recorded them.

    .venv/bin/python benchmarks/bench_replay.py [--episodes N]

Records the benchmark demonstrations of both tasks afresh with this build (as
``bench_recipes`` does: walk 100 from random start phases with DART 0.005, run 50 with DART
0.1, two workers) into a temporary folder, replays them from their stored seeds and executed
actions (``pipeline inspect --replay``, one env per file, episodes in file order) and
reports, per task, how many episodes replay exactly, the largest state deviation and the
replay speed. Prints a table and writes
``benchmarks/results/bench_replay.json``.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_recipes import PIPELINE, TASKS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_replay.json"


def main() -> int:
    from pipeline.rollout.replay import replay_file

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=None, help="per task (default: all)")
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    report: dict = {"machine": platform.node(), "cpus": os.cpu_count(),
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "tasks": {}}  # fmt: skip
    table = Table(title="replay from stored seeds and executed actions, recording machine")
    for column in ("task", "episodes", "steps", "exact", "max |obs - stored|", "steps/s"):
        table.add_column(column, justify="left" if column == "task" else "right")
    scratch = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    for task in ("walk", "run"):
        env_id, episodes, noise, _ = TASKS[task]
        path = scratch / f"{task}-dart{noise:g}-{episodes}.h5"
        subprocess.run([str(PIPELINE), "record", "--env", env_id, "--episodes", str(episodes),
                        "--seed", "0", "--workers", "2", "--noise", str(noise), "--out",
                        str(path)], check=True, capture_output=True)  # fmt: skip
        start = time.perf_counter()
        results = replay_file(path, args.episodes)
        seconds = time.perf_counter() - start
        steps = sum(r.steps for r in results)
        entry = {"data": f"recorded afresh: {episodes} episodes, DART {noise:g}, 2 workers",
                 "episodes": len(results), "steps": steps,
                 "exact": sum(r.exact for r in results),
                 "max_deviation": max(r.max_deviation for r in results),
                 "first_steps": [r.first_step for r in results if r.first_step is not None],
                 "steps_per_s": steps / seconds}  # fmt: skip
        report["tasks"][task] = entry
        table.add_row(task, str(entry["episodes"]), str(steps), str(entry["exact"]),
                      f"{entry['max_deviation']:.3g}", f"{entry['steps_per_s']:.0f}")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
