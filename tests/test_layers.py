"""Import-layer contract: data flows sim -> datasets -> models -> pipeline, never back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["sim", "datasets", "models", "pipeline"]


def _imported_top_level(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", LAYERS)
def test_package_imports_only_earlier_layers(package):
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    forbidden = set(LAYERS) - allowed
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_top_level(path) & forbidden)
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_product_never_imports_pybullet_envs():
    """pybullet_envs imports legacy gym; the product reads its files as data only."""
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            assert "pybullet_envs" not in _imported_top_level(path), path


def test_checker_detects_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from pipeline.cli import app\nimport models.registry\n")
    assert _imported_top_level(bad) == {"pipeline", "models"}
