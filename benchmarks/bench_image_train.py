"""Image policies: training throughput streaming frames from HDF5, peak memory, and the
cost per control step of acting on a camera.

    .venv/bin/python benchmarks/bench_image_train.py [--episodes 30] [--camera 84x84]
        [--epochs 3] [--quick]

- throughput: samples/s of ``model.fit`` of the default ``cnn2d`` (image+state) fed by the
  streaming ``tf.data`` pipeline (cache off; and with the default 256 MB block cache)
  against the same samples held in memory, same model, same run, best epoch after the
  first (which pays tracing);
- memory: peak RSS (VmHWM) of a fresh process training on the file with a 64 MB cache
  (the frames are several times that) next to the frames' size decoded, and of a process
  that only loads the same samples into memory;
- per step: the default ``cnn2d``'s forward pass as ``evaluate`` runs it (NumPy, batch 1)
  and as a compiled ``tf.function`` (the fallback), next to rendering the policy's camera
  frame and a walk control step, on the walk env.

Demonstrations (HumanoidWalk, random start phase, DART 0.005, seed 0) are recorded once into
``benchmarks/results/data/``. Prints tables and writes
``benchmarks/results/bench_image_train.json``.
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
RESULTS = ROOT / "benchmarks" / "results" / "bench_image_train.json"
DATA = ROOT / "benchmarks" / "results" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train import best_epoch_rate  # noqa: E402

WALK = "sim/HumanoidWalk-v0"
PIPELINE = Path(sys.executable).parent / "pipeline"


def camera_data(episodes: int, camera: str) -> Path:
    path = DATA / f"walk-dart0.005-{episodes}-camera{camera}.h5"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(PIPELINE), "record", "--env", WALK, "--episodes", str(episodes),
                        "--seed", "0", "--workers", "2", "--noise", "0.005", "--start-phase",
                        "random", "--camera", camera, "--out", str(path)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    return path


def spec_of(path: Path, ids: list[int]):
    """The spec ``pipeline train`` builds for the default cnn2d on ``path``."""
    from datasets import open_dataset
    from pipeline.training.config import load_config
    from pipeline.training.inputs import build_spec

    config = load_config(None, ["model.name=cnn2d"])
    with open_dataset(path) as ds:
        return build_spec(config, ds, ids, "bench")[0]


def throughput(path: Path, epochs: int) -> dict:
    """Streaming vs in-memory ``fit`` of the default cnn2d, same model and batches."""
    import keras
    import numpy as np
    import tensorflow as tf

    from datasets import open_dataset
    from datasets.training.epochs import batches_per_epoch, in_memory_dataset
    from datasets.training.tfdata import make_tf_dataset
    from models import build_policy

    with open_dataset(path) as ds:
        ids = ds.episode_ids()
    spec = spec_of(path, ids)
    batch, buffer = 256, 8192

    def model() -> keras.Model:
        built = build_policy("cnn2d", spec, seed=0)
        built.train_model.compile("adam", "mse")
        return built.train_model

    def rate(fit) -> float:
        return best_epoch_rate(fit, samples)

    obs, frames, actions = in_memory_dataset(path, ids, images=True)
    samples = len(obs)
    targets = spec.normalize_actions(actions)
    in_memory = tf.data.Dataset.from_tensor_slices(({"image": frames, "observation": obs},
                                                    targets))  # fmt: skip
    in_memory = in_memory.shuffle(buffer, seed=0).batch(batch).prefetch(tf.data.AUTOTUNE)
    steps = batches_per_epoch(path, ids, batch)

    def streamed(cache_mb: float):
        mean, std = (tf.constant(v) for v in spec.act_scale())
        data = make_tf_dataset(path, ids, batch_size=batch, shuffle_buffer=buffer, seed=0,
                               epochs=None, cache_mb=cache_mb, inputs="image+state")  # fmt: skip
        data = data.map(lambda x, y: (x, (y - mean) / std))
        return lambda cb: model().fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0,
                                      callbacks=[cb])  # fmt: skip

    arrays = {"image": frames, "observation": obs}
    numpy_rate = rate(lambda cb: model().fit(arrays, targets, batch_size=batch, epochs=epochs,
                                             shuffle=True, verbose=0, callbacks=[cb]))  # fmt: skip
    slices_rate = rate(lambda cb: model().fit(in_memory, epochs=epochs, verbose=0, callbacks=[cb]))
    memory_rate = max(numpy_rate, slices_rate)  # the faster in-memory input is the bar
    uncached = rate(streamed(0.0))
    cached = rate(streamed(256.0))
    return {"samples": samples, "frames_mb": frames.nbytes / 1e6,
            "in_memory_numpy_samples_per_s": numpy_rate,
            "in_memory_tensor_slices_samples_per_s": slices_rate,
            "in_memory_samples_per_s": memory_rate, "streamed_uncached_samples_per_s": uncached,
            "ratio_uncached": uncached / memory_rate, "streamed_cache256_samples_per_s": cached,
            "ratio_cache256": cached / memory_rate,
            "batch": batch, "shuffle_buffer": buffer,
            "frame_bytes": int(np.prod(spec.image_shape))}  # fmt: skip


def _vmhwm_kb(code: str) -> int:
    done = subprocess.run([sys.executable, "-c", code + "\nprint(next(l.split()[1] for l in "
                           "open('/proc/self/status') if l.startswith('VmHWM')))\n"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout.strip().splitlines()[-1])


def memory(path: Path, tmp: Path) -> dict:
    """Peak RSS of fresh processes training one epoch of the default cnn2d: streamed with a
    64 MB block cache on the file and on one with three times its episodes (frames far
    beyond the cache), and with the file's samples loaded into memory (NumPy arrays)."""
    from bench_train import repeat_file

    triple = repeat_file(path, 3, tmp / "triple.h5")
    settings = ("['training.epochs=1', 'tracking.enabled=false', 'data.cache_mb=64', "
                "'data.shuffle_buffer=4096']")  # fmt: skip

    def streamed(data: Path, out: Path) -> int:
        return _vmhwm_kb(
            "from pathlib import Path\n"
            "from pipeline.training.config import load_config\n"
            "from pipeline.algorithms.behaviour_cloning import train_from_file\n"
            f"config = load_config(Path('configs/cnn2d.yaml'), {settings})\n"
            f"train_from_file(Path({str(data)!r}), config, Path({str(out)!r}))\n"
        )

    in_memory = (
        "import numpy as np\n"
        "from datasets import open_dataset\n"
        "from datasets.training.epochs import in_memory_dataset\n"
        "from models import build_policy\n"
        "from pipeline.training.config import load_config\n"
        "from pipeline.training.inputs import build_spec\n"
        f"ds = open_dataset({str(path)!r}); ids = ds.episode_ids()\n"
        "spec = build_spec(load_config(None, ['model.name=cnn2d']), ds, ids, 'bench')[0]\n"
        "ds.close()\n"
        f"obs, frames, act = in_memory_dataset({str(path)!r}, ids, images=True)\n"
        "built = build_policy('cnn2d', spec)\n"
        "built.train_model.compile('adam', 'mse')\n"
        "built.train_model.fit({'image': frames, 'observation': obs},\n"
        "    spec.normalize_actions(act), batch_size=256, epochs=1, verbose=0)\n"
    )
    return {"file_mb": path.stat().st_size / 1e6,
            "train_streamed_cache64_mb": streamed(path, tmp / "one") / 1024,
            "triple_file_frames_mb": frames_mb(triple),
            "train_streamed_cache64_triple_file_mb": streamed(triple, tmp / "three") / 1024,
            "train_in_memory_mb": _vmhwm_kb(in_memory) / 1024}  # fmt: skip


def frames_mb(path: Path) -> float:
    """MB of the decoded frames of ``path``."""
    from datasets import open_dataset

    with open_dataset(path) as ds:
        frames = sum(ds.episode(i).info.total_steps + 1 for i in ds.episode_ids())
        return frames * float(np.prod(ds.metadata.camera.frame_shape)) / 1e6


def per_step(camera: str, repeats: int) -> dict:
    """Milliseconds per control step: the policy's forward pass, its camera frame, physics."""
    import gymnasium as gym
    import numpy as np

    import sim  # noqa: F401
    from datasets.store.schema import CameraSpec
    from models import build_policy
    from models.inference import KerasForward, compile_numpy
    from pipeline.training.config import load_config

    width, height = (int(v) for v in camera.split("x"))
    env = gym.make(WALK, render_mode="rgb_array", start_phase=0.0)
    obs, _ = env.reset(seed=0)
    import dataclasses

    from models.spec import PolicySpec

    spec = PolicySpec.from_zscore(env_id=WALK, obs_mean=np.zeros(obs.size),
                                  obs_variance=np.ones(obs.size), act_mean=np.zeros(36),
                                  act_variance=np.ones(36))  # fmt: skip
    spec = dataclasses.replace(spec, inputs="image+state", camera=CameraSpec(width, height))
    model = build_policy(load_config(None, ["model.name=cnn2d"]).model, spec).policy
    frame = env.unwrapped.camera_frame(width, height, "follow")
    x = (frame[None], obs[None].astype(np.float32))
    results = {}
    for name, call in (("numpy forward (evaluate's path)", compile_numpy(model)),
                       ("tf.function forward", KerasForward(model))):  # fmt: skip
        call(*x)  # warm up
        start = time.perf_counter()
        for _ in range(repeats):
            call(*x)
        results[name] = (time.perf_counter() - start) / repeats * 1e3
    start = time.perf_counter()
    for _ in range(repeats):
        env.unwrapped.camera_frame(width, height, "follow")
    results[f"render {camera} frame"] = (time.perf_counter() - start) / repeats * 1e3
    action = np.zeros(env.action_space.shape, np.float32)
    start = time.perf_counter()
    steps = 0
    for _ in range(repeats):
        _, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated:
            env.reset(seed=steps)
    results["simulation step"] = (time.perf_counter() - start) / steps * 1e3
    env.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--camera", default="84x84")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.epochs = 3, 2
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    path = camera_data(args.episodes, args.camera)
    report = {"machine": platform.node(), "cpus": os.cpu_count(), "camera": args.camera,
              "episodes": args.episodes,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    report["per_step_ms"] = per_step(args.camera, 50 if args.quick else 300)
    report["throughput"] = throughput(path, args.epochs)
    with tempfile.TemporaryDirectory(prefix="bench-image-train-") as tmp:
        report["memory"] = memory(path, Path(tmp))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=1) + "\n")
    console = Console()
    table = Table(title=f"default cnn2d on {args.camera} frames, {report['throughput']['samples']} "
                        "walk samples")  # fmt: skip
    table.add_column("measure")
    table.add_column("value", justify="right")
    t, m = report["throughput"], report["memory"]
    for name, value in (
        ("fit, in memory, NumPy arrays (samples/s)", f"{t['in_memory_numpy_samples_per_s']:.0f}"),
        (
            "fit, in memory, tensor slices (samples/s)",
            f"{t['in_memory_tensor_slices_samples_per_s']:.0f}",
        ),
        ("fit, streamed, no cache (samples/s)", f"{t['streamed_uncached_samples_per_s']:.0f}"),
        ("  ratio to the faster in memory", f"{t['ratio_uncached']:.2f}"),
        ("fit, streamed, 256 MB cache (samples/s)", f"{t['streamed_cache256_samples_per_s']:.0f}"),
        ("  ratio to the faster in memory", f"{t['ratio_cache256']:.2f}"),
        ("frames decoded (MB)", f"{t['frames_mb']:.0f}"),
        ("file (MB)", f"{m['file_mb']:.0f}"),
        ("peak RSS, training streamed, 64 MB cache (MB)", f"{m['train_streamed_cache64_mb']:.0f}"),
        (
            f"  same, 3x the episodes ({m['triple_file_frames_mb']:.0f} MB of frames)",
            f"{m['train_streamed_cache64_triple_file_mb']:.0f}",
        ),
        ("peak RSS, training in memory (MB)", f"{m['train_in_memory_mb']:.0f}"),
        *((f"{k} (ms)", f"{v:.2f}") for k, v in report["per_step_ms"].items()),
    ):
        table.add_row(name, value)
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
