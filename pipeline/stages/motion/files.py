"""A learned motion on disk: the Keras network, its spec and config beside it; it reloads
alone (no pickle, nothing imported by a name read from a file)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import PipelineError

MODEL_DIR = "model"
"""Sub-directory of a ``motion fit`` run holding the learned motion."""
SPEC_FILE = "motion.json"
NET_FILE = "motion.keras"
CONFIG_FILE = "config.yaml"
KIND = "phase-to-joint-vector"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class MotionSpec:
    """What a motion network maps: a phase of ``skill``'s clip to its joint vector."""

    skill: str
    """Skill whose clip was learned."""
    env_id: str
    """Environment that plays it (the skill's)."""
    clip: str
    """The clip file: relative to ``pybullet_data`` (a skill's own), or an absolute path."""
    cycle_time: float
    """Seconds per cycle of the clip (phase 1 = this many seconds)."""
    outputs: tuple[str, ...]
    """A label per output (``sim.mocap.JOINT_VECTOR_NAMES``)."""
    kind: str = KIND
    format_version: int = FORMAT_VERSION


@dataclass
class LoadedMotion:
    """A learned motion, ready to evaluate at any phase."""

    directory: Path
    spec: MotionSpec
    model: Any
    forward: Any = field(repr=False, default=None)

    def joints_at(self, phases: np.ndarray) -> np.ndarray:
        """(N, 36) joint vectors at (N,) phases (the fast NumPy forward pass)."""
        if self.forward is None:
            from models.inference import compile_forward

            self.forward = compile_forward(self.model)
        x = np.asarray(phases, dtype=np.float32).reshape(-1, 1)
        return np.asarray(self.forward(x), dtype=np.float64)


def clip_path(clip: str) -> Path:
    """Where a spec's clip file is."""
    from sim.assets import pybullet_data_path

    return Path(clip) if Path(clip).is_absolute() else pybullet_data_path(clip)


def save_motion(directory: Path, model: Any, spec: MotionSpec, config_yaml: str) -> None:
    """Write the network, ``motion.json`` and the config into ``directory`` (new)."""
    directory.mkdir(parents=True, exist_ok=False)
    model.save(directory / NET_FILE)
    (directory / SPEC_FILE).write_text(json.dumps(asdict(spec), indent=2) + "\n")
    (directory / CONFIG_FILE).write_text(config_yaml)


def motion_directory(path: Path) -> Path:
    """The learned motion under ``path``: a ``motion fit`` run directory or its model."""
    return path / MODEL_DIR if (path / MODEL_DIR / SPEC_FILE).is_file() else path


def check_motion_path(path: Path, option: str) -> Path:
    """The motion directory of ``path``; one line naming ``option`` if it holds none."""
    directory = motion_directory(path)
    if not path.exists():
        raise PipelineError(f"{option} {path}: not found")
    if not (directory / SPEC_FILE).is_file():
        policy = (path / "policy").is_dir() or (path / "spec.json").is_file()
        hint = "; a policy from `pipeline train` is played by `pipeline evaluate`" if policy else ""
        raise PipelineError(f"{option} {path}: not a motion model (no {SPEC_FILE}){hint}")
    return directory


def load_motion(path: Path, option: str = "POLICY") -> LoadedMotion:
    """Load a learned motion; one line naming ``option`` for anything wrong."""
    directory = check_motion_path(path, option)
    try:
        raw = json.loads((directory / SPEC_FILE).read_text())
        raw["outputs"] = tuple(raw["outputs"])
        spec = MotionSpec(**raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise PipelineError(f"{option} {path}: unreadable {SPEC_FILE} ({exc})") from None
    if spec.kind != KIND or spec.format_version != FORMAT_VERSION:
        raise PipelineError(
            f"{option} {path}: {SPEC_FILE} describes '{spec.kind}' v{spec.format_version}, "
            f"not '{KIND}' v{FORMAT_VERSION}"
        )
    import keras

    try:
        model = keras.models.load_model(directory / NET_FILE, compile=False)
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{option} {path}: cannot load {NET_FILE} ({exc})") from None
    if tuple(model.input_shape) != (None, 1) or tuple(model.output_shape) != (
        None,
        len(spec.outputs),
    ):
        raise PipelineError(
            f"{option} {path}: the network maps {model.input_shape} to {model.output_shape}, "
            f"not one phase to {len(spec.outputs)} joint numbers"
        )
    return LoadedMotion(directory, spec, model)
