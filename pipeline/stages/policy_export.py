"""``pipeline policy export``: a trained policy in a format another runtime loads, checked
against the Keras policy before anything is written.

``DIR`` (``--out``) receives::

    model.onnx | model.tflite | saved_model/   the exported policy (raw inputs -> raw actions)
    spec.json, config.json                     the source policy's spec and config
    export.json                                format, quantization, parity, source, versions
    training_run.json                          the source's training run record, when it had one

The export is written into a hidden sibling directory, loaded back in its runtime and run on
recorded states (``--data``, by default the recording the policy was trained on) next to the
Keras policy; a float export that differs by more than ``FLOAT_TOLERANCE`` anywhere is
refused and nothing is left behind. int8 exports report their error without a bound
(docs/benchmarks/export.md measures what it costs in closed loop).
``pipeline evaluate --policy DIR``
(or ``DIR/model.onnx`` ...) runs the export in closed loop.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.outputs import write_json

FLOAT_TOLERANCE = 1e-4
"""Largest absolute action difference a float export may show against the Keras policy."""
DEFAULT_STATES = 1000
"""Recorded states the parity check runs on."""
_BATCH = 256


@dataclass(frozen=True)
class ExportRequest:
    """What ``pipeline policy export`` was asked."""

    policy: str
    """Policy directory, training run directory or MLflow URI."""
    format: str
    """``saved_model``, ``onnx`` or ``litert``."""
    out: Path
    """The export directory; must not exist."""
    quantize: str | None = None
    """``int8`` (LiteRT only): int8 weights."""
    data: Path | None = None
    """Recording whose states the parity check uses (default: the policy's training data)."""
    states: int = DEFAULT_STATES
    """How many recorded states the parity check uses."""


@dataclass
class ExportReport:
    """What an export wrote and how closely it follows the Keras policy."""

    directory: str
    model_path: str
    format: str
    quantize: str | None
    max_abs_diff: float
    mean_abs_diff: float
    states: int
    data: str
    seconds: float
    """Wall time of writing the export (conversion only)."""
    size_bytes: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_request(request: ExportRequest) -> None:
    """Every check that needs no model: format, quantization, runtime packages, --out."""
    from models.export import EXTRA, FORMATS, QUANTIZATIONS, missing_packages

    if request.format not in FORMATS:
        raise PipelineError(f"--format {request.format}: choose one of {', '.join(FORMATS)}")
    if request.quantize is not None:
        if request.quantize not in QUANTIZATIONS:
            raise PipelineError(f"--quantize {request.quantize}: choose one of "
                                f"{', '.join(QUANTIZATIONS)}")  # fmt: skip
        if request.format != "litert":
            raise PipelineError(f"--quantize {request.quantize}: offered for --format litert "
                                "only")  # fmt: skip
    missing = missing_packages(request.format)
    if missing:
        raise PipelineError(
            f"--format {request.format}: needs {', '.join(missing)}, not installed "
            f"(pip install {' '.join(missing)}, or the project's '[{EXTRA}]' extra)"
        )
    if request.states < 1:
        raise PipelineError(f"--states: must be at least 1, got {request.states}")
    if request.out.exists():
        raise PipelineError(f"--out {request.out}: already exists (choose a new directory)")
    if request.data is not None and not request.data.is_file():
        raise PipelineError(f"--data {request.data}: no such file")


def export_policy(request: ExportRequest, lookup_uri: str | None = None) -> ExportReport:
    """Export, check parity, and move the result into ``request.out`` (module docstring)."""
    from models.export import MODEL_NAMES
    from pipeline.rollout.policy_source import resolve_policy_source

    check_request(request)
    resolved = resolve_policy_source(request.policy, lookup_uri, option="POLICY")
    try:
        loaded = resolved.loaded
        inputs, data = _parity_inputs(request, loaded.spec)
        request.out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{request.out.name}.", dir=request.out.parent))
        try:
            model_path = staging / MODEL_NAMES[request.format]
            seconds = _write(loaded, request, model_path)
            diffs = _differences(loaded, request.format, model_path, inputs)
            max_diff, mean_diff = float(diffs.max()), float(diffs.mean())
            if request.quantize is None and not max_diff <= FLOAT_TOLERANCE:
                raise PipelineError(
                    f"POLICY {request.policy}: the {request.format} export differs from the "
                    f"Keras policy by up to {max_diff:.3g} on {len(diffs)} recorded states "
                    f"(allowed {FLOAT_TOLERANCE:g}); nothing written"
                )
            report = ExportReport(
                directory=str(request.out), model_path=str(request.out / model_path.name),
                format=request.format, quantize=request.quantize, max_abs_diff=max_diff,
                mean_abs_diff=mean_diff, states=len(diffs), data=str(data), seconds=seconds,
                size_bytes=_size(model_path), source=request.policy,
            )  # fmt: skip
            _write_beside(staging, loaded, resolved.training, report)
            staging.rename(request.out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if resolved.download_dir is not None:
            shutil.rmtree(resolved.download_dir, ignore_errors=True)
    return report


def _parity_inputs(request: ExportRequest, spec: Any) -> tuple[dict[str, np.ndarray], Path]:
    from datasets import DatasetError, open_dataset
    from pipeline.core.recorded_inputs import sample_inputs

    data = request.data
    if data is None:
        data = Path(spec.stats_source)
        if not spec.stats_source or not data.is_file():
            raise PipelineError(
                f"POLICY {request.policy}: its training data ({spec.stats_source or 'unknown'}) "
                "is not here; name a recording of its env with --data"
            )
    try:
        with open_dataset(data) as ds:
            return sample_inputs(ds, spec, request.states, f"--data {data}"), data
    except DatasetError as exc:
        raise PipelineError(f"--data {data}: {exc}") from None


def _write(loaded: Any, request: ExportRequest, model_path: Path) -> float:
    from models.export import write_export
    from sim.quiet import muted_output

    start = time.perf_counter()
    try:
        # tf2onnx and the TFLite converter print progress and notices from C++ and Python.
        with muted_output(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_export(loaded.model, loaded.spec, request.format, model_path, request.quantize)
    except Exception as exc:  # a converter's failure is the user's answer, in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineError(f"POLICY {request.policy}: the {request.format} export failed "
                            f"({first})") from None  # fmt: skip
    return time.perf_counter() - start


def keras_actions(model: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The Keras policy's actions on ``inputs`` (keyed by input name), in batches."""
    rows = len(next(iter(inputs.values())))
    out = []
    for start in range(0, rows, _BATCH):
        batch = [x[start : start + _BATCH] for x in inputs.values()]
        out.append(np.asarray(model(batch if len(batch) > 1 else batch[0], training=False)))
    return np.concatenate(out)


def _differences(loaded: Any, fmt: str, model_path: Path,
                 inputs: dict[str, np.ndarray]) -> np.ndarray:  # fmt: skip
    from models.exported import runner_for
    from sim.quiet import muted_output

    runner = runner_for(fmt, model_path, loaded.spec)
    rows = len(next(iter(inputs.values())))
    with muted_output():
        exported = np.concatenate([
            runner(*(x[start : start + _BATCH] for x in inputs.values()))
            for start in range(0, rows, _BATCH)
        ])  # fmt: skip
    return np.abs(exported.astype(np.float64) - keras_actions(loaded.model, inputs))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _write_beside(staging: Path, loaded: Any, training: dict[str, Any],
                  report: ExportReport) -> None:  # fmt: skip
    from datasets.store.schema import installed_version
    from models.exported import EXPORT_FILE
    from models.policy_files import CONFIG_FILE, MANIFEST_FILE, SPEC_FILE
    from pipeline.core.run_files import TRAINING_RUN_FILE

    (staging / SPEC_FILE).write_text(loaded.spec.to_json() + "\n")
    (staging / CONFIG_FILE).write_text(json.dumps(loaded.config, indent=2) + "\n")
    if training:
        write_json(staging / TRAINING_RUN_FILE, training)
    manifest = json.loads((loaded.directory / MANIFEST_FILE).read_text())
    runtimes = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert")
    write_json(staging / EXPORT_FILE, {
        **report.to_dict(),
        "source_manifest": manifest,
        "versions": {name: installed_version(name) for name in runtimes},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })  # fmt: skip
