"""What a training run directory records so that ``--resume`` continues the same run.

``config.yaml`` is the run's resolved config: a resume trains with it, and refuses options
that contradict it. ``run_start.json``, written as soon as the MLflow run exists, names
that run, its store and the dataset digest, so a resume after a kill reopens the same
MLflow run (instead of starting another) and refuses different data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.core.outputs import read_json_object, write_json
from pipeline.core.run_files import CONFIG_FILE, RUN_START_FILE
from pipeline.training.config import TrainConfig, config_differences, load_config


def saved_config_path(out: Path) -> Path:
    """``<out>/config.yaml``; a PipelineError when the run directory has none."""
    path = out / CONFIG_FILE
    if not path.is_file():
        raise PipelineError(f"--resume: nothing to resume in {out} (no {CONFIG_FILE})")
    return path


def check_resume_config(out: Path, config: TrainConfig) -> None:
    """A resumed run keeps the config it started with: one line naming the first setting
    of ``config`` that differs from ``<out>/config.yaml``."""
    path = saved_config_path(out)
    differences = config_differences(load_config(path), config)
    if differences:
        key, saved, given = differences[0]
        raise PipelineError(
            f"--resume {out}: {key} is {json.dumps(given)} here but {json.dumps(saved)} in "
            f"{path}; a resumed run keeps its own config (drop the option or use a new --out)"
        )


def read_run_start(out: Path) -> dict[str, Any]:
    """What ``<out>/run_start.json`` holds; ``{}`` for a run directory without one."""
    path = out / RUN_START_FILE
    if not path.is_file():
        return {}
    return read_json_object(path, f"--resume {out}")


def check_resume_record(
    out: Path, record: dict[str, Any], data: Path, digest: str, tracking_uri: str | None
) -> None:
    """The resumed run trains on the data it started with and logs to the store holding
    its MLflow run (``tracking_uri`` as :func:`pipeline.tracking.portable_uri` gives it)."""
    started = record.get("dataset_digest")
    if started and started != digest:
        raise PipelineError(
            f"--data {data}: not the data the run in {out} started with "
            f"(digest {digest[:19]}..., the run has {started[:19]}...)"
        )
    store = record.get("tracking_uri")
    if record.get("run_id") and tracking_uri is not None and store != tracking_uri:
        raise PipelineError(
            f"--tracking-uri {tracking_uri}: the run in {out} is tracked in {store}; "
            "resume it against that store"
        )


def write_run_start(
    out: Path, run_id: str | None, tracking_uri: str | None, experiment: str, digest: str
) -> None:
    """Record the MLflow run (``None`` without tracking) and the data of a new run."""
    write_json(out / RUN_START_FILE, {"run_id": run_id, "tracking_uri": tracking_uri,
                                      "experiment": experiment,
                                      "dataset_digest": digest})  # fmt: skip
