"""The first difference between what a run recorded and what a resume asks for."""

from __future__ import annotations

from typing import Any


def first_difference(stored: Any, given: Any, path: str = "") -> str:
    """The first difference between two nested values (dicts compared key by key, in
    sorted order), as ``a.b: x there, y now``."""
    if isinstance(stored, dict) and isinstance(given, dict):
        for key in sorted(set(stored) | set(given)):
            if stored.get(key) != given.get(key):
                return first_difference(stored.get(key), given.get(key),
                                        f"{path}.{key}".lstrip("."))  # fmt: skip
    where = f"{path}: " if path else ""
    return f"{where}{stored!r} there, {given!r} now"
