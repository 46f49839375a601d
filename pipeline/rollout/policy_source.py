"""Find a trained policy from what the user typed: a directory or an MLflow URI.

Accepted: a policy directory (``runs/NAME/policy``), a training run directory holding one
(``runs/NAME``), an exported policy (``pipeline policy export``: its directory, its
``model.onnx``, ``model.tflite`` or ``saved_model``), ``runs:/<run_id>/<artifact path>``
and ``models:/<name>/<version>``, ``models:/<name>@<alias>`` or ``models:/<model_id>``.
MLflow URIs are downloaded into a temporary directory; the policy inside must be one
``pipeline train`` logged (the whole policy directory is the MLflow model's data).
The training run is found too, so the evaluation run can be linked to it.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.exported import export_directory_of
from models.policy_files import MANIFEST_FILE, SPEC_FILE
from pipeline.core.errors import PipelineError
from pipeline.core.run_files import POLICY_DIR as POLICY_SUBDIR
from pipeline.core.run_files import TRAINING_RUN_FILE

if TYPE_CHECKING:
    from models import LoadedPolicy
    from models.exported import ExportedPolicy

_MLFLOW_SCHEMES = ("runs:/", "models:/")


@dataclass(frozen=True)
class ResolvedPolicy:
    """A loaded policy and where it came from."""

    loaded: LoadedPolicy | ExportedPolicy
    """Model (or exported forward pass), spec, config and the local directory."""
    source: str
    """What the user passed."""
    training_run_id: str | None
    """The MLflow run that trained it, when known."""
    tracking_uri: str | None
    """The tracking store holding that run, when known."""
    training: dict[str, Any] = field(default_factory=dict)
    """What the training run recorded (``best_val_loss``, ``model_uri``, ...), when known."""
    download_dir: Path | None = None
    """Temporary directory an MLflow URI was downloaded into (the caller removes it)."""


def is_mlflow_uri(text: str) -> bool:
    """Whether ``text`` names an MLflow run artifact or registered/logged model."""
    return text.startswith(_MLFLOW_SCHEMES)


def local_policy_env(text: str) -> str | None:
    """The env a local policy (or training run) directory was trained on, read from its
    spec without loading Keras; None for an MLflow URI or anything unreadable (loading the
    policy reports those)."""
    if is_mlflow_uri(text):
        return None
    path = Path(text)
    if (path / POLICY_SUBDIR / MANIFEST_FILE).is_file():
        path = path / POLICY_SUBDIR
    try:
        data = json.loads((path / SPEC_FILE).read_text())
    except (OSError, ValueError):
        return None
    env_id = data.get("env_id") if isinstance(data, dict) else None
    return env_id if isinstance(env_id, str) else None


def resolve_policy_source(
    text: str, tracking_uri: str | None, option: str = "--policy", exported: bool = False
) -> ResolvedPolicy:
    """Load the policy ``text`` names; one-line ``PipelineError`` naming ``option`` for
    anything wrong.

    ``tracking_uri`` is the store MLflow URIs are resolved against. ``exported``: accept an
    exported policy (commands that only roll a policy out); the others need its weights.
    """
    if is_mlflow_uri(text):
        if tracking_uri is None:
            raise PipelineError(f"{option} {text}: an MLflow URI needs tracking (drop --no-track)")
        target = Path(tempfile.mkdtemp(prefix="policy-"))
        try:
            directory, run_id = _download(text, tracking_uri, target, option)
            training = _run_record(run_id, tracking_uri)
            loaded = _load(directory, text, option)
            return ResolvedPolicy(loaded, text, run_id, tracking_uri, training, target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    path = Path(text)
    if export_directory_of(path) is not None:
        if not exported:
            raise PipelineError(f"{option} {text}: an exported policy (pipeline policy export); "
                                "this needs the Keras policy it was exported from")  # fmt: skip
        exported_policy = _load_exported(path, text, option)
        run = _training_run(exported_policy.directory)
        return ResolvedPolicy(exported_policy, text, run.get("run_id"), run.get("tracking_uri"),
                              run)  # fmt: skip
    if (path / POLICY_SUBDIR / MANIFEST_FILE).is_file():
        path = path / POLICY_SUBDIR
    loaded = _load(path, text, option)
    run = _training_run(path)
    return ResolvedPolicy(loaded, text, run.get("run_id"), run.get("tracking_uri"), run)


def _load(directory: Path, text: str, option: str) -> LoadedPolicy:
    from models import PolicyLoadError, load_policy
    from pipeline.core.tensorflow_setup import gpu_names

    gpu_names()  # imports TensorFlow without its start-up log

    try:
        return load_policy(directory)
    except PolicyLoadError as exc:
        raise PipelineError(f"{option} {text}: {exc}") from None


def _load_exported(path: Path, text: str, option: str) -> ExportedPolicy:
    from models.exported import ExportedLoadError, load_exported

    try:
        return load_exported(path)
    except ExportedLoadError as exc:
        raise PipelineError(f"{option} {text}: {exc}") from None


def _training_run(policy_dir: Path) -> dict:
    """The training run record ``pipeline train`` leaves beside its policy directory."""
    for candidate in (policy_dir / TRAINING_RUN_FILE, policy_dir.parent / TRAINING_RUN_FILE):
        try:
            data = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def _run_record(run_id: str | None, tracking_uri: str) -> dict[str, Any]:
    """The training run's summary as ``training_run.json`` would hold it."""
    if run_id is None:
        return {}
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        run = MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException:
        return {"run_id": run_id, "tracking_uri": tracking_uri}
    return {"run_id": run_id, "tracking_uri": tracking_uri,
            "best_val_loss": run.data.metrics.get("best/val_loss")}  # fmt: skip


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _run_id_of(uri: str, client: object) -> str | None:
    """The run that produced the model or artifact ``uri`` names."""
    match = re.match(r"runs:/([^/]+)", uri)
    if match:
        return match.group(1)
    rest = uri[len("models:/") :].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return client.get_model_version_by_alias(name, alias).run_id  # type: ignore[attr-defined]
    parts = rest.split("/")
    if len(parts) == 2:
        return client.get_model_version(parts[0], parts[1]).run_id  # type: ignore[attr-defined]
    import mlflow

    return mlflow.get_logged_model(parts[0]).source_run_id


def _download(uri: str, tracking_uri: str, target: Path, option: str) -> tuple[Path, str | None]:
    """Download ``uri`` and return the policy directory inside it and the run id."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pipeline.tracking import using_tracking_uri

    try:
        with using_tracking_uri(tracking_uri):
            run_id = _run_id_of(uri, MlflowClient(tracking_uri))
            local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(target)))
    except (MlflowException, OSError, ValueError) as exc:
        raise PipelineError(f"{option} {uri}: cannot resolve it ({_first_line(exc)})") from None
    manifests = sorted(local.rglob(MANIFEST_FILE)) if local.is_dir() else []
    if not manifests:
        raise PipelineError(
            f"{option} {uri}: holds no policy directory written by `pipeline train` "
            f"(no {MANIFEST_FILE})"
        )
    return manifests[0].parent, run_id
