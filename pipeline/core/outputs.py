"""Checks and writers for the files a command produces.

Output paths are validated before any work starts, so a bad path costs nothing: an
existing output is refused unless the command got ``--overwrite`` (nothing that exists is
replaced silently), and a path must lie under a writable directory. Missing folders are
created only once every check passed (:func:`make_parent`, :func:`write_json`). Files are
written atomically (temporary file + rename) so a failure never leaves a half-written
report in place of a good one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from datasets.store.checks import directory_problem, location_problem
from pipeline.core.errors import PipelineError

OVERWRITE_HINT = "use --overwrite"


def check_output_path(
    path: Path,
    option: str,
    suffixes: tuple[str, ...] = (),
    *,
    overwrite: bool = False,
    hint: str = OVERWRITE_HINT,
) -> Path:
    """Fail early if ``path`` cannot be written: wrong suffix, a directory, an existing
    file without ``overwrite`` (``hint`` says what to do), or no writable folder to hold it.
    Missing folders are fine: :func:`make_parent` creates them once all checks passed."""
    if suffixes and path.suffix.lower() not in suffixes:
        raise PipelineError(f"{option} {path}: file name must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise PipelineError(f"{option} {path}: is a directory, expected a file path")
    if path.exists() and not overwrite:
        raise PipelineError(f"{option} {path}: already exists; not overwriting it ({hint})")
    problem = location_problem(path)
    if problem:
        raise PipelineError(f"{option} {path}: {problem}")
    return path


def check_output_dir(path: Path, option: str) -> Path:
    """Fail early if the directory ``path`` can neither be written into nor created."""
    if path.exists() and not path.is_dir():
        raise PipelineError(f"{option} {path}: exists and is not a directory")
    problem = directory_problem(path)
    if problem:
        raise PipelineError(f"{option} {path}: {problem}")
    return path


def make_parent(path: Path | None, option: str) -> None:
    """Create the missing folders above ``path`` (call it after every check passed)."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PipelineError(
            f"{option} {path}: cannot create {path.parent} ({exc.strerror or exc})"
        ) from None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def read_json_object(path: Path, where: str) -> dict[str, Any]:
    """The JSON object in ``path``; one line starting with ``where`` (the option or argument
    that led here) for a file that cannot be read or holds something else."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{where}: {path} is unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{where}: {path} is not a JSON object")
    return data


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically (NaN/Inf become null, so any reader can parse it);
    missing folders above ``path`` are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide reports from other users
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(_json_safe(payload), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
