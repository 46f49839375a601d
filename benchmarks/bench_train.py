"""Training benchmarks: input pipeline, memory, and validation quality.

    .venv/bin/python benchmarks/bench_train.py [--quick] [--skip-quality]

- pipeline: samples/s of ``model.fit`` fed by the HDF5-streaming ``tf.data`` pipeline
  over ``model.fit`` on the same samples held in memory, same model, same run;
- memory: peak RSS (VmHWM) of a training process on a file with 10x the episodes,
  over one on the base file (fresh processes);
- quality: best validation action MSE (normalized units) of the default MLP and CNN on
  50 walk and 20 run demonstrations, and the effect of batch norm, dropout and
  observation-noise augmentation (same seeds).

Demonstrations are recorded into ``benchmarks/results/data/`` once and reused. Prints
tables and writes ``benchmarks/results/bench_train.json``.
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
RESULTS = ROOT / "benchmarks" / "results" / "bench_train.json"
DATA = ROOT / "benchmarks" / "results" / "data"
WALK, RUN = "sim/HumanoidWalk-v0", "sim/HumanoidRun-v0"


def demonstrations(env_id: str, episodes: int) -> Path:
    """Record (once) ``episodes`` expert demonstrations with seed 0 and 2 workers."""
    from pipeline.stages.record import RecordConfig, record

    path = DATA / f"{env_id.split('/')[1]}-{episodes}.h5"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        record(RecordConfig(out=path, env_id=env_id, episodes=episodes, seed=0, workers=2))
    return path


def pipeline_ratio(path: Path, epochs: int) -> dict:
    """Streaming tf.data vs in-memory tensors, same MLP, same batch size, best epoch."""
    import keras
    import tensorflow as tf

    from datasets import open_dataset
    from datasets.training.epochs import batches_per_epoch, in_memory_dataset
    from datasets.training.tfdata import make_tf_dataset

    with open_dataset(path) as ds:
        ids = ds.episode_ids()
        obs_dim = ds.metadata.observation_space.shape[0]
        act_dim = ds.metadata.action_space.shape[0]

    def model() -> keras.Model:
        keras.utils.set_random_seed(0)
        dense = keras.layers.Dense
        m = keras.Sequential([keras.Input((obs_dim,)), dense(256, "relu"), dense(256, "relu"),
                              dense(act_dim)])  # fmt: skip
        m.compile("adam", "mse")
        return m

    def rate(fit) -> float:
        return best_epoch_rate(fit, samples)

    x, y = in_memory_dataset(path, ids)
    samples = len(x)
    in_memory = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(20_000, seed=0)
    in_memory = in_memory.batch(256).prefetch(tf.data.AUTOTUNE)
    steps = batches_per_epoch(path, ids, 256)

    def streamed(cache_mb: float):
        data = make_tf_dataset(path, ids, batch_size=256, shuffle_buffer=20_000, seed=0,
                               epochs=None, cache_mb=cache_mb)  # fmt: skip
        return lambda cb: model().fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0,
                                      callbacks=[cb])  # fmt: skip

    memory_rate = rate(lambda cb: model().fit(in_memory, epochs=epochs, verbose=0, callbacks=[cb]))
    cached_rate = rate(streamed(default_cache_mb()))
    uncached_rate = rate(streamed(0.0))
    return {"samples": samples, "in_memory_samples_per_s": memory_rate,
            "streamed_samples_per_s": cached_rate, "ratio": cached_rate / memory_rate,
            "cache_mb": default_cache_mb(),
            "streamed_uncached_samples_per_s": uncached_rate,
            "ratio_uncached": uncached_rate / memory_rate}  # fmt: skip


def best_epoch_rate(fit, samples: int) -> float:
    """Samples per second of the fastest epoch after the first (which pays tracing);
    ``fit(callback)`` runs ``model.fit`` with the timing callback."""
    import keras

    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    fit(Timer())
    return samples / min(times[1:] or times)


def default_cache_mb() -> float:
    """The train config's block-cache default: the benchmark measures what users get."""
    from pipeline.training.config import DataConfig

    return DataConfig().cache_mb


def peak_rss_kb(path: Path, out: Path, cache_mb: float) -> int:
    """VmHWM of a fresh process training 2 epochs on ``path`` (no tracking)."""
    code = (
        "from pathlib import Path\n"
        "from pipeline.training.config import load_config\n"
        "from pipeline.algorithms.behaviour_cloning import train_from_file\n"
        "config = load_config(None, ['training.epochs=2', 'tracking.enabled=false',\n"
        f"                            'data.cache_mb={cache_mb}'])\n"
        f"train_from_file(Path({str(path)!r}), config, Path({str(out)!r}))\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def repeat_file(path: Path, factor: int, out: Path) -> Path:
    """A file with ``factor`` copies of every episode of ``path`` (same arrays)."""
    from datasets import EpisodeWriter, open_dataset

    with open_dataset(path) as ds:
        meta = ds.metadata
        ids = ds.episode_ids()
        with EpisodeWriter.create(out, meta) as writer:
            for _ in range(factor):
                for i in ids:
                    episode = ds.episode(i).load()
                    episode.attempt = None
                    writer.commit(episode)
    return out


QUALITY_VARIANTS = {
    "mlp (default)": ["model.name=mlp"],
    "mlp + batch norm": ["model.name=mlp", "model.batch_norm=after"],
    "mlp + dropout 0.2": ["model.name=mlp", "model.dropout=0.2"],
    "mlp + obs noise 0.1": ["model.name=mlp", "data.augment.obs_noise=0.1"],
    "cnn1d (K=4)": ["model.name=cnn1d", "data.history=4"],
}


def quality(path: Path, epochs: int, tmp: Path) -> dict:
    from pipeline.algorithms.behaviour_cloning import train_from_file
    from pipeline.training.config import load_config

    rows = {}
    for name, overrides in QUALITY_VARIANTS.items():
        config = load_config(None, [*overrides, f"training.epochs={epochs}",
                                    "training.early_stopping_patience=5"])  # fmt: skip
        out = tmp / f"{path.stem}-{len(rows)}"
        result = train_from_file(path, config, out)
        rows[name] = {"best_val_mse": result.best_val_loss, "best_epoch": result.best_epoch,
                      "final_train_mse": result.final_train_loss,
                      "initial_val_mse": result.initial_val_loss,
                      "mean_action_val_mse": result.mean_action_val_loss,
                      "epochs": result.epochs, "wall_s": result.wall_s}  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small data, few epochs")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    walk_n, run_n, epochs = (8, 4, 3) if args.quick else (50, 20, 30)
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    walk, run = demonstrations(WALK, walk_n), demonstrations(RUN, run_n)
    report["pipeline"] = {"walk": pipeline_ratio(walk, 4 if args.quick else 6)}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        base = run if not args.quick else demonstrations(RUN, 4)
        big = repeat_file(base, 10, tmp / "run-x10.h5")
        report["memory"] = {}
        for cache_mb in (default_cache_mb(), 0.0):
            rss = [peak_rss_kb(p, tmp / f"rss-{cache_mb}-{i}", cache_mb)
                   for i, p in enumerate((base, big))]  # fmt: skip
            report["memory"][f"cache_mb={cache_mb:g}"] = {
                "files": [base.name, "10x episodes"], "peak_rss_kb": rss,
                "ratio": rss[1] / rss[0]}  # fmt: skip
        if not args.skip_quality:
            report["quality"] = {f"walk, {walk_n} demos": quality(walk, epochs, tmp),
                                 f"run, {run_n} demos": quality(run, epochs, tmp)}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    console = Console(width=140)
    p = report["pipeline"]["walk"]
    console.print(f"tf.data streaming vs in-memory fit ({p['samples']} walk samples): "
                  f"{p['streamed_samples_per_s']:.0f} (cache {p['cache_mb']:g} MB) / "
                  f"{p['streamed_uncached_samples_per_s']:.0f} (no cache) vs "
                  f"{p['in_memory_samples_per_s']:.0f} samples/s, ratio {p['ratio']:.2f} / "
                  f"{p['ratio_uncached']:.2f}")  # fmt: skip
    for setting, m in report["memory"].items():
        console.print(f"peak RSS ({setting}) training on {m['files'][0]} vs 10x the episodes: "
                      f"{m['peak_rss_kb'][0] / 1e3:.0f} MB vs {m['peak_rss_kb'][1] / 1e3:.0f} "
                      f"MB (ratio {m['ratio']:.2f})")  # fmt: skip
    for task, rows in report.get("quality", {}).items():
        table = Table(title=f"validation action MSE (normalized units), {task}, seed 0")
        for column in ("variant", "best val MSE", "epoch", "final train MSE",
                       "mean-action baseline"):  # fmt: skip
            table.add_column(column, justify="right")
        for name, r in rows.items():
            table.add_row(name, f"{r['best_val_mse']:.4f}", str(r["best_epoch"]),
                          f"{r['final_train_mse']:.4f}",
                          f"{r['mean_action_val_mse']:.4f}")  # fmt: skip
        console.print(table)
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
