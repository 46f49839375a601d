"""Recording with a camera against without: episodes per second, size, workers.

    .venv/bin/python benchmarks/bench_camera.py [--episodes 8] [--camera 84x84] [--repeats 2]

For each task (HumanoidRun; HumanoidWalk from random start phases), ``record()`` of the
same ``--episodes`` expert episodes (same seeds) with and without ``--camera``, with 1 and
with 2 workers, alternating, best of ``--repeats`` each (load from other processes is
noise, not cost). Reports episodes per second, the camera/no-camera ratio, 2 workers
against 1, and the file's bytes per 1000 steps with the share the frames take. Prints a
table and writes ``benchmarks/results/bench_camera.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from datasets import open_dataset
from pipeline.stages.record import RecordConfig, record

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "bench_camera.json"
TASKS = {"run": "sim/HumanoidRun-v0", "walk": "sim/HumanoidWalk-v0"}


def one(env_id: str, episodes: int, workers: int, camera: str | None, tmp: Path) -> dict:
    out = tmp / f"{env_id.split('/')[-1]}-{workers}-{camera}.h5"
    summary = record(RecordConfig(out=out, env_id=env_id, episodes=episodes, workers=workers,
                                  camera=camera, mode="overwrite"))  # fmt: skip
    with open_dataset(out) as ds:
        image_bytes = ds.summary().image_bytes
    return {"episodes_per_s": summary.episodes_per_s, "steps": summary.steps,
            "file_bytes": summary.file_bytes, "image_bytes": image_bytes}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--camera", default="84x84")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "episodes": args.episodes, "camera": args.camera, "tasks": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for task, env_id in TASKS.items():
            best: dict[str, dict] = {}
            for _ in range(args.repeats):
                for workers in (1, 2):
                    for camera in (None, args.camera):
                        key = f"{workers} workers, {'camera' if camera else 'no camera'}"
                        row = one(env_id, args.episodes, workers, camera, Path(tmp))
                        if key not in best or row["episodes_per_s"] > best[key]["episodes_per_s"]:
                            best[key] = row
                        print(f"{task} {key}: {row['episodes_per_s']:.2f} episodes/s", flush=True)
            report["tasks"][task] = best
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"record {args.episodes} expert episodes, camera {args.camera} "
                  f"(best of {args.repeats})")  # fmt: skip
    for column in ("task", "workers", "episodes/s no camera", "episodes/s camera",
                   "camera / none", "KB per 1000 steps (camera)", "of which frames"):  # fmt: skip
        table.add_column(column, justify="right")
    for task, best in report["tasks"].items():
        for workers in (1, 2):
            plain = best[f"{workers} workers, no camera"]
            cam = best[f"{workers} workers, camera"]
            kb = cam["file_bytes"] / cam["steps"] * 1000 / 1e3
            table.add_row(task, str(workers), f"{plain['episodes_per_s']:.2f}",
                          f"{cam['episodes_per_s']:.2f}",
                          f"{cam['episodes_per_s'] / plain['episodes_per_s']:.2f}", f"{kb:.0f}",
                          f"{cam['image_bytes'] / cam['file_bytes']:.0%}")  # fmt: skip
        two = (
            best["2 workers, camera"]["episodes_per_s"]
            / best["1 workers, camera"]["episodes_per_s"]
        )
        table.add_row(task, "2 / 1", "", f"{two:.2f}x", "", "", "", end_section=True)
    Console(width=160).print(table)
    print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
