"""Run an exported policy (``models.export``) in its own runtime: ONNX Runtime, the LiteRT
interpreter or TensorFlow's SavedModel loader.

Each runner is called like :class:`models.inference.NumpyForward`: the model's inputs as
arrays in the model's order (uint8 frames first for image policies, then observations),
any batch size, raw actions back as float32. Runners pickle as their file's path and open
the runtime on first use in the process that calls them, so a rollout worker loads the
exported file itself. One intra-op thread each: rollouts run one process per core.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.export import FORMATS, MODEL_NAMES
from models.policy_files import CONFIG_FILE, SPEC_FILE
from models.spec import PolicySpec

EXPORT_FILE = "export.json"
"""Beside an exported model: format, quantization, parity, source policy, versions."""

Array = np.ndarray


class ExportedLoadError(Exception):
    """A path is not an exported policy or its runtime cannot open it."""


class _LazyRunner:
    """Holds a path; opens the runtime on the first call, again after unpickling."""

    def __init__(self, path: str | Path, input_names: tuple[str, ...]) -> None:
        self.path = str(path)
        self.input_names = tuple(input_names)
        self._session: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "input_names": self.input_names, "_session": None}

    def __call__(self, *inputs: Array) -> Array:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"{self.path} takes {len(self.input_names)} inputs, got {len(inputs)}")
        if self._session is None:
            self._session = self._open()
        return np.asarray(self._run(dict(zip(self.input_names, inputs, strict=True))),
                          dtype=np.float32)  # fmt: skip

    def _open(self) -> Any:
        raise NotImplementedError

    def _run(self, feed: dict[str, Array]) -> Any:
        raise NotImplementedError


class OnnxForward(_LazyRunner):
    """A ``.onnx`` policy on ONNX Runtime's CPU provider."""

    def _open(self) -> Any:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no notices on stderr
        return onnxruntime.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])

    def _run(self, feed: dict[str, Array]) -> Any:
        return self._session.run(None, feed)[0]


class LiteRTForward(_LazyRunner):
    """A ``.tflite`` policy on the LiteRT interpreter (``ai-edge-litert``)."""

    def _open(self) -> Any:
        from ai_edge_litert.interpreter import Interpreter

        from sim.quiet import muted_output

        # The runtime announces its CPU delegate on stderr when it first allocates.
        with muted_output():
            interpreter = Interpreter(model_path=self.path, num_threads=1)
            # The signature runner resizes the batch axis to each call's inputs.
            runner = interpreter.get_signature_runner()
            runner(**{name: np.zeros((1, *detail["shape"][1:]), detail["dtype"])
                      for name, detail in runner.get_input_details().items()})  # fmt: skip
        return runner

    def _run(self, feed: dict[str, Array]) -> Any:
        outputs = self._session(**feed)
        return next(iter(outputs.values()))


class SavedModelForward(_LazyRunner):
    """A TensorFlow SavedModel directory, through its ``serve`` endpoint."""

    def _open(self) -> Any:
        import tensorflow as tf

        return tf.saved_model.load(self.path)

    def _run(self, feed: dict[str, Array]) -> Any:
        args = list(feed.values())
        return self._session.serve(args if len(args) > 1 else args[0]).numpy()


_RUNNERS = {"saved_model": SavedModelForward, "onnx": OnnxForward, "litert": LiteRTForward}


@dataclass(frozen=True)
class ExportedPolicy:
    """An exported policy with the spec and config written beside it."""

    forward: _LazyRunner
    """Raw inputs -> raw actions in the exported format's runtime."""
    spec: PolicySpec
    config: dict[str, Any]
    """The source policy's training config."""
    directory: Path
    """The export directory."""
    format: str
    """``saved_model``, ``onnx`` or ``litert``."""
    record: dict[str, Any]
    """What ``export.json`` says (quantization, parity, source)."""


def export_directory_of(path: str | Path) -> Path | None:
    """The export directory ``path`` names (the directory itself, or the model inside it:
    ``model.onnx``, ``model.tflite``, ``saved_model``); None when it is not one."""
    path = Path(path)
    for candidate in (path, path.parent):
        if (candidate / EXPORT_FILE).is_file() and (
            candidate == path or path.name in MODEL_NAMES.values()
        ):
            return candidate
    return None


def runner_for(fmt: str, model_path: Path, spec: PolicySpec) -> _LazyRunner:
    """The runner of ``fmt`` for the model at ``model_path``."""
    return _RUNNERS[fmt](model_path, tuple(spec.input_shapes))


def load_exported(path: str | Path) -> ExportedPolicy:
    """Open the exported policy ``path`` names; ``ExportedLoadError`` if it is not one."""
    directory = export_directory_of(path)
    if directory is None:
        raise ExportedLoadError(f"{path}: not an exported policy (no {EXPORT_FILE} beside it)")
    try:
        record = json.loads((directory / EXPORT_FILE).read_text())
        spec = PolicySpec.from_json((directory / SPEC_FILE).read_text())
        config = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, ValueError, TypeError) as exc:
        raise ExportedLoadError(f"{directory}: damaged export ({exc})") from None
    fmt = record.get("format") if isinstance(record, dict) else None
    if fmt not in FORMATS:
        raise ExportedLoadError(f"{directory / EXPORT_FILE}: unknown format {fmt!r}")
    model_path = directory / MODEL_NAMES[fmt]
    if not model_path.exists():
        raise ExportedLoadError(f"{directory}: {MODEL_NAMES[fmt]} is missing")
    return ExportedPolicy(runner_for(fmt, model_path, spec), spec, config, directory, fmt,
                          record)  # fmt: skip
