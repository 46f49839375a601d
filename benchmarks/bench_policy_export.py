"""Exported policies: cost, size, parity, latency and closed-loop walking per format.

    .venv/bin/python benchmarks/bench_policy_export.py [--policy DIR] [--episodes 40]

Trains the quickstart's walk policy (``pipeline train`` on the quickstart's 100 DART-0.005
demonstrations, the walk recipe, seed 0; or takes ``--policy``), exports it with
``pipeline policy export`` to SavedModel, ONNX, LiteRT and int8 LiteRT, and reports per
format: export time (conversion only), file size, parity against the Keras policy on 1,000
recorded states (max and mean absolute action difference), latency per call at batch 1 and 8
beside the NumPy forward pass ``pipeline evaluate`` uses for Keras policies (each runtime on
one thread, warmed up first), and survival and distance on the same held-out seeds
(3000-3039 by default) for every format, the expert and a random policy. Prints a table and
writes ``benchmarks/results/bench_policy_export.json``.
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

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_recipes import PIPELINE, baselines, record_data  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_policy_export.json"
ARMS = {  # name -> (format, quantize); "keras" is the saved policy on its NumPy forward pass
    "keras": (None, None),
    "saved_model": ("saved_model", None),
    "onnx": ("onnx", None),
    "litert": ("litert", None),
    "litert_int8": ("litert", "int8"),
}


def latency_ms(forward, rows: np.ndarray, batch: int, calls: int) -> float:
    """Median of ``calls`` timed calls on consecutive batches, after 50 warm-up calls."""
    batches = [rows[(i * batch) % (len(rows) - batch) :][:batch] for i in range(calls + 50)]
    for x in batches[:50]:
        forward(x)
    times = []
    for x in batches[50:]:
        start = time.perf_counter()
        forward(x)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def closed_loop(policy: str, seed: int, episodes: int) -> dict:
    from pipeline.rollout.episodes import summarize
    from pipeline.stages.evaluate import EvaluateRequest, evaluate

    start = time.perf_counter()
    report = evaluate(EvaluateRequest(policy=policy, episodes=episodes, seed=seed), None)
    summary = summarize(report.results["learner"])
    return {"survival_rate": summary["survival_rate"], "distance_m": summary["distance"]["mean"],
            "pose_reward": summary.get("pose_reward", {}).get("mean"),
            "eval_s": time.perf_counter() - start,
            "steps": [e.steps for e in report.results["learner"]]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policy", type=Path, default=None, help="default: train one")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--eval-seed", type=int, default=3000)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from datasets import open_dataset
    from models import load_policy
    from models.exported import load_exported
    from models.inference import compile_forward
    from pipeline.core.recorded_inputs import sample_inputs
    from pipeline.rollout.episodes import summarize
    from pipeline.stages.policy_export import ExportRequest, export_policy

    data = record_data("walk")
    seeds = list(range(args.eval_seed, args.eval_seed + args.episodes))
    report: dict = {"machine": platform.node(), "cpus": os.cpu_count(),
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "data": str(data.relative_to(ROOT)), "eval_seeds": [seeds[0], seeds[-1]],
                    "arms": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        policy = args.policy
        if policy is None:
            policy = Path(tmp) / "walk"
            command = [str(PIPELINE), "train", "--data", str(data), "--seed", "0", "--out",
                       str(policy), "--no-track"]  # fmt: skip
            subprocess.run(command, check=True, capture_output=True)
        loaded = load_policy(policy / "policy" if (policy / "policy").is_dir() else policy)
        with open_dataset(data) as ds:
            rows = sample_inputs(ds, loaded.spec, 1000, str(data))["observation"]
        base = baselines("walk", seeds)
        report["expert"] = {
            "survival_rate": summarize(base["expert"])["survival_rate"],
            "distance_m": summarize(base["expert"])["distance"]["mean"],
        }
        report["random"] = {
            "survival_rate": summarize(base["random"])["survival_rate"],
            "distance_m": summarize(base["random"])["distance"]["mean"],
        }
        for arm, (fmt, quantize) in ARMS.items():
            if fmt is None:
                entry = {"size_bytes": (loaded.directory / "policy.keras").stat().st_size}
                forward, source = compile_forward(loaded.model), str(policy)
            else:
                out = Path(tmp) / arm
                made = export_policy(ExportRequest(policy=str(policy), format=fmt, out=out,
                                                   quantize=quantize, data=data))  # fmt: skip
                entry = {"export_s": made.seconds, "size_bytes": made.size_bytes,
                         "max_abs_diff": made.max_abs_diff, "mean_abs_diff": made.mean_abs_diff,
                         "states": made.states}  # fmt: skip
                forward, source = load_exported(out).forward, str(out)
            entry["latency_ms_batch1"] = latency_ms(forward, rows, 1, 2000)
            entry["latency_ms_batch8"] = latency_ms(forward, rows, 8, 1000)
            entry.update(closed_loop(source, args.eval_seed, args.episodes))
            report["arms"][arm] = entry
            print(f"{arm}: survival {entry['survival_rate']:.0%}, "
                  f"{entry['distance_m']:.1f} m, batch-1 {entry['latency_ms_batch1']:.3f} ms",
                  flush=True)  # fmt: skip
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=1) + "\n")
    Console().print(_table(report))
    return 0


def _table(report: dict) -> Table:
    table = Table(title=f"exported walk policy, held-out seeds {report['eval_seeds'][0]}-"
                        f"{report['eval_seeds'][1]} (expert "
                        f"{report['expert']['survival_rate']:.0%}, random "
                        f"{report['random']['survival_rate']:.0%})")  # fmt: skip
    columns = ("format", "export s", "MB", "max |diff|", "mean |diff|", "ms b1", "ms b8",
               "survival", "distance m")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "format" else "right")
    for arm, e in report["arms"].items():
        table.add_row(arm, f"{e['export_s']:.2f}" if "export_s" in e else "-",
                      f"{e['size_bytes'] / 1e6:.2f}",
                      f"{e['max_abs_diff']:.2g}" if "max_abs_diff" in e else "-",
                      f"{e['mean_abs_diff']:.2g}" if "mean_abs_diff" in e else "-",
                      f"{e['latency_ms_batch1']:.3f}", f"{e['latency_ms_batch8']:.3f}",
                      f"{e['survival_rate']:.0%}", f"{e['distance_m']:.1f}")  # fmt: skip
    return table


if __name__ == "__main__":
    raise SystemExit(main())
