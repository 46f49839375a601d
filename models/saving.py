"""Save and load a policy directory that reloads alone.

Layout::

    <directory>/
        policy.keras     the Keras policy: raw observations -> raw actions, with the
                         normalization statistics inside (no custom objects)
        spec.json        PolicySpec: env id, shapes, history, statistics and their source
        config.json      the resolved config the policy was trained with (caller's dict)
        manifest.json    format name and version, Keras/TensorFlow versions, SHA-256 of
                         the three files above; written last, so it marks a complete save

Saving writes into a hidden sibling directory and renames it into place, so an interrupted
save never leaves a half-written policy under the target name, and an existing directory is
replaced only when asked and only if it is itself a policy. Loading uses Keras'
``safe_mode=True``: a policy holding Python code (a ``Lambda`` layer) or an unregistered custom
object is refused with one clear line before Keras tries to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
from pydantic import BaseModel

from datasets.store.schema import installed_version
from models.policy_files import (
    CONFIG_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    POLICY_FILE,
    SPEC_FILE,
)
from models.spec import PolicySpec

_PAYLOAD = (POLICY_FILE, SPEC_FILE, CONFIG_FILE)


class PolicyLoadError(Exception):
    """A directory is missing, is not a policy, is damaged, or holds unsafe code."""


class PolicySaveError(Exception):
    """A policy could not be saved (mismatched model and spec, or the target is taken)."""


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy read back from its directory."""

    model: keras.Model
    """Raw observations -> raw actions."""
    spec: PolicySpec
    """Shapes, history and normalization statistics of the policy."""
    config: dict[str, Any]
    """The config saved with the policy, as plain JSON data."""
    directory: Path
    """Where it was loaded from."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _shape(tensor: Any) -> tuple[int | None, ...]:
    return tuple(tensor.shape)


def _check_model_matches_spec(model: keras.Model, spec: PolicySpec) -> str | None:
    expected_inputs = spec.input_shapes
    if len(model.inputs) != len(expected_inputs) or len(model.outputs) != 1:
        return (
            f"the policy must have {len(expected_inputs)} input(s) "
            f"({', '.join(expected_inputs)}) and one output"
        )
    checks = [
        (f"input shape {_shape(tensor)} ({name})", _shape(tensor) == (None, *shape), (None, *shape))
        for tensor, (name, shape) in zip(model.inputs, expected_inputs.items(), strict=True)
    ]
    output = _shape(model.outputs[0])
    checks.append((f"output shape {output}", output == (None, spec.act_dim), (None, spec.act_dim)))
    for what, fits, expected in checks:
        if not fits:
            return f"model {what} does not match the spec's {expected}"
    return None


def _config_data(config: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(config, BaseModel):
        return config.model_dump(mode="json")
    return dict(config)


def is_policy_directory(directory: str | os.PathLike[str]) -> bool:
    """True when ``directory`` holds a manifest of this format (it may still be damaged)."""
    try:
        manifest = json.loads((Path(directory) / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME


def save_policy(
    directory: str | os.PathLike[str],
    policy_model: keras.Model,
    spec: PolicySpec,
    config: Mapping[str, Any] | BaseModel,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``policy_model`` (raw obs -> raw actions), ``spec`` and ``config`` to ``directory``.

    The directory must not exist or be empty; with ``overwrite=True`` an existing *policy*
    directory is replaced (anything else is never deleted). Returns the directory's path.
    Raises ``PolicySaveError``.
    """
    target = Path(directory)
    problem = _check_model_matches_spec(policy_model, spec)
    if problem:
        raise PolicySaveError(f"cannot save policy to {target}: {problem}")
    try:
        config_text = json.dumps(_config_data(config), indent=1, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PolicySaveError(f"cannot save policy to {target}: config is not JSON: {exc}") from exc
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not overwrite:
            raise PolicySaveError(
                f"cannot save policy to {target}: it exists and is not empty "
                "(pass overwrite=True to replace a policy)"
            )
        if not is_policy_directory(target):
            raise PolicySaveError(
                f"cannot save policy to {target}: it exists and is not a policy directory, "
                "refusing to replace it"
            )

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    try:
        policy_model.save(staging / POLICY_FILE)
        (staging / SPEC_FILE).write_text(spec.to_json() + "\n")
        (staging / CONFIG_FILE).write_text(config_text + "\n")
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "keras_version": keras.__version__,
            "tensorflow_version": installed_version("tensorflow"),
            "files": {name: _sha256(staging / name) for name in _PAYLOAD},
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _move_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        staging.rename(target)
        return
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
        staging.rename(target)
        return
    # Replace an old policy: move it aside first, so a failure leaves one of the two whole.
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    retired.rmdir()
    target.rename(retired)
    try:
        staging.rename(target)
    except BaseException:
        retired.rename(target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _keras_objects(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every serialized Keras object (a dict with ``class_name``) in a model config."""
    if isinstance(node, Mapping):
        if "class_name" in node and "module" in node:
            yield node
        for value in node.values():
            yield from _keras_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _keras_objects(value)


def _unsafe_object(model_file: Path) -> str | None:
    """Describe the first object safe mode must refuse (a Lambda or an unknown custom one)."""
    try:
        with zipfile.ZipFile(model_file) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # not readable as a .keras archive: Keras' own error says so below
    for obj in _keras_objects(config):
        module, class_name = obj.get("module"), str(obj.get("class_name"))
        if class_name == "Lambda":
            name = obj.get("config", {}).get("name", "?")
            return f"a Lambda layer ({name!r}) holding Python code"
        if isinstance(module, str) and module.split(".")[0] == "keras":
            continue
        if class_name == "function":  # a plain Python function, referenced by name
            registered = str(obj.get("config"))
        else:
            registered = str(obj.get("registered_name") or class_name)
        if keras.saving.get_registered_object(registered) is None:
            return f"an unregistered custom object {registered!r}"
    return None


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PolicyLoadError(f"{path}: unreadable {what}: {exc}") from None


def load_policy(directory: str | os.PathLike[str]) -> LoadedPolicy:
    """Load a directory written by :func:`save_policy`, verifying it first.

    Raises ``PolicyLoadError`` with a one-line message for a missing directory, a directory
    that is not a policy, a damaged or incomplete one, or one holding unsafe objects.
    """
    root = Path(directory)
    if not root.exists():
        raise PolicyLoadError(f"policy directory not found: {root}")
    if not root.is_dir():
        raise PolicyLoadError(f"{root} is not a policy directory (it is a file)")
    if not (root / MANIFEST_FILE).is_file():
        raise PolicyLoadError(f"{root} is not a policy directory (no {MANIFEST_FILE})")
    manifest = _read_json(root / MANIFEST_FILE, "manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise PolicyLoadError(f"{root} is not a policy directory ({MANIFEST_FILE} is foreign)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PolicyLoadError(
            f"{root}: policy format version {version!r} is newer than this code reads "
            f"({FORMAT_VERSION})"
        )
    checksums = manifest.get("files") or {}
    for name in _PAYLOAD:
        path = root / name
        if not path.is_file():
            raise PolicyLoadError(f"{root} is incomplete: {name} is missing")
        if checksums.get(name) != _sha256(path):
            raise PolicyLoadError(f"{path} is damaged (its checksum does not match the manifest)")

    try:
        spec = PolicySpec.from_json((root / SPEC_FILE).read_text())
    except ValueError as exc:
        raise PolicyLoadError(f"{root / SPEC_FILE}: {exc}") from None
    config = _read_json(root / CONFIG_FILE, "config")
    if not isinstance(config, dict):
        raise PolicyLoadError(f"{root / CONFIG_FILE}: a config must be a JSON object")

    model_file = root / POLICY_FILE
    unsafe = _unsafe_object(model_file)
    if unsafe:
        raise PolicyLoadError(f"{model_file} contains {unsafe}; refused under safe_mode")
    try:
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types; the caller needs one line
        detail = " ".join(str(exc).split())[:300]
        raise PolicyLoadError(f"cannot load {model_file}: {detail}") from exc
    problem = _check_model_matches_spec(model, spec)
    if problem:
        raise PolicyLoadError(f"{root}: {problem}")
    return LoadedPolicy(model=model, spec=spec, config=config, directory=root)
