"""Checks and writers for the files a command produces.

Output paths are validated before any work starts, so a bad path costs nothing, and
files are written atomically (temporary file + rename) so a failure never leaves a
half-written report in place of a good one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError


def check_output_path(path: Path, option: str, suffixes: tuple[str, ...] = ()) -> Path:
    """Fail early if ``path`` cannot be written: missing folder, not writable, wrong suffix."""
    if suffixes and path.suffix.lower() not in suffixes:
        raise PipelineError(f"{option} {path}: file name must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise PipelineError(f"{option} {path}: is a directory, expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise PipelineError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PipelineError(f"{option} {path}: directory {parent} is not writable")
    return path


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically (NaN/Inf become null, so any reader can parse it)."""
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
