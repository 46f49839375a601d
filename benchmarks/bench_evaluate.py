"""Closed-loop inference benchmarks.

    .venv/bin/python benchmarks/bench_evaluate.py [--quick]

1. Per-step policy latency of the default MLP (``pipeline train`` defaults, 256-256) and
   the default CNN (cnn1d, history 4) on HumanoidWalk's sizes (197 -> 36), for
   ``model.predict``, an eager call, a ``tf.function`` with a fixed signature
   (``KerasForward``) and the compiled NumPy pass (``NumpyForward``), batched over 1, 2
   and 8 environments: milliseconds per call and per environment-step.
2. Rollout speed in the same process and run: control steps per second of HumanoidWalk
   driven by the learned policy (default MLP trained briefly on recorded walk
   demonstrations, compiled NumPy forward pass) versus by the NumPy expert, alternating
   seeds; only the act+step loop is timed (resets are not), so a learner that falls
   early is not penalised for resetting more often.

Prints tables and writes ``benchmarks/results/bench_evaluate.json``.
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

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_evaluate.json"
DATA = ROOT / "benchmarks" / "results" / "data"
WALK = "sim/HumanoidWalk-v0"
OBS, ACT = 197, 36


def _per_call_ms(call, x, min_time: float, max_calls: int) -> float:
    call(x)  # warm-up: tracing, allocation
    calls, start = 0, time.perf_counter()
    while calls < max_calls and (calls < 5 or time.perf_counter() - start < min_time):
        call(x)
        calls += 1
    return 1e3 * (time.perf_counter() - start) / calls


def latency(quick: bool) -> list[dict]:
    import keras

    from models import build_policy
    from models.inference import KerasForward, compile_numpy
    from models.spec import PolicySpec
    from pipeline.training.config import TrainConfig

    rows = []
    rng = np.random.default_rng(0)
    for name, model_config, history in (
        ("mlp (default)", TrainConfig().model, 1),
        ("cnn1d (K=4)", {"name": "cnn1d"}, 4),
    ):
        spec = PolicySpec.from_zscore(env_id=WALK, obs_mean=rng.normal(size=OBS),
                                      obs_variance=rng.uniform(0.5, 2, OBS),
                                      act_mean=np.zeros(ACT), act_variance=np.ones(ACT),
                                      history=history)  # fmt: skip
        model = build_policy(model_config, spec, seed=0).policy
        paths = {
            "model.predict": lambda x, m=model: m.predict(x, verbose=0),
            "eager call": lambda x, m=model: keras.ops.convert_to_numpy(m(x, training=False)),
            "tf.function": KerasForward(model),
            "numpy (ours)": compile_numpy(model),
        }
        for batch in (1, 2, 8):
            x = rng.normal(size=(batch, *spec.obs_shape)).astype(np.float32)
            for path, call in paths.items():
                slow = path in ("model.predict", "eager call")
                ms = _per_call_ms(call, x, 0.3 if quick else 1.5, 20 if slow else 20_000)
                rows.append({"model": name, "path": path, "batch": batch, "ms_per_call": ms,
                             "ms_per_env_step": ms / batch})  # fmt: skip
    return rows


def trained_policy(tmp: Path, quick: bool) -> Path:
    from pipeline.algorithms.behaviour_cloning import train_from_file
    from pipeline.stages.record import RecordConfig, record
    from pipeline.training.config import load_config

    data = DATA / "HumanoidWalk-v0-50.h5"
    if not data.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        record(RecordConfig(out=data, env_id=WALK, episodes=50, seed=0, workers=2))
    config = load_config(None, [f"training.epochs={2 if quick else 10}"])
    train_from_file(data, config, tmp / "policy", tracking_uri=None)
    return tmp / "policy"


def rollout_ratio(policy_dir: Path, episodes: int) -> dict:
    import gymnasium as gym
    from threadpoolctl import threadpool_limits

    import sim
    from pipeline.rollout.policies import ExpertPolicy
    from pipeline.rollout.policy_source import resolve_policy_source
    from pipeline.stages.evaluate import learner_policy

    learner = learner_policy(resolve_policy_source(str(policy_dir), None))
    expert = ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[WALK]))
    env = gym.make(WALK, start_phase="random")
    totals = {"learner": [0, 0.0], "expert": [0, 0.0]}
    with threadpool_limits(limits=1, user_api="blas"):
        for seed in range(episodes):
            for name, policy in (("expert", expert), ("learner", learner)):
                policy.reset(seed)
                obs, _ = env.reset(seed=seed)
                done, steps, start = False, 0, time.perf_counter()
                while not done:
                    action = np.asarray(policy.act(obs)).astype(np.float32)
                    obs, _, terminated, truncated, _ = env.step(action)
                    done, steps = terminated or truncated, steps + 1
                totals[name][0] += steps
                totals[name][1] += time.perf_counter() - start
    env.close()
    rates = {name: steps / seconds for name, (steps, seconds) in totals.items()}
    return {"steps": {k: v[0] for k, v in totals.items()}, "steps_per_s": rates,
            "ratio": rates["learner"] / rates["expert"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    report["latency"] = latency(args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        policy = trained_policy(Path(tmp), args.quick)
        report["rollout"] = rollout_ratio(policy, 4 if args.quick else 20)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    console = Console(width=140)
    table = Table(title="policy latency per call (ms) and per environment-step (ms)")
    for column in ("model", "path", "batch 1", "batch 2 (per env)", "batch 8 (per env)"):
        table.add_column(column, justify="right")
    keyed = {(r["model"], r["path"], r["batch"]): r for r in report["latency"]}
    for model, path in dict.fromkeys((r["model"], r["path"]) for r in report["latency"]):
        rows = [keyed[model, path, b] for b in (1, 2, 8)]
        cells = [f"{rows[0]['ms_per_call']:.3f}"] + [
            f"{r['ms_per_call']:.3f} ({r['ms_per_env_step']:.3f})" for r in rows[1:]
        ]
        table.add_row(model, path, *cells)
    console.print(table)
    r = report["rollout"]
    console.print(f"HumanoidWalk rollout, act+step loop: learner {r['steps_per_s']['learner']:.0f} "
                  f"steps/s ({r['steps']['learner']} steps), expert "
                  f"{r['steps_per_s']['expert']:.0f} steps/s ({r['steps']['expert']} steps), "
                  f"ratio {r['ratio']:.2f}")  # fmt: skip
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
