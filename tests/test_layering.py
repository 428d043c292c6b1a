"""The layering of the packages: the domain core stays free of the web framework and MLflow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(package: str) -> dict[str, set[str]]:
    """Top-level modules imported by each file of ``package``."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("decisioning", {"fastapi", "starlette", "mlflow", "uvicorn", "serving", "training"}),
        ("models", {"fastapi", "starlette", "uvicorn", "serving", "training"}),
        ("training", {"fastapi", "starlette", "uvicorn", "serving"}),
    ],
)
def test_package_does_not_import(package: str, forbidden: set[str]) -> None:
    offenders = {
        file: sorted(names & forbidden)
        for file, names in imported_modules(package).items()
        if names & forbidden
    }
    assert not offenders, f"{package} must not import {sorted(forbidden)}: {offenders}"


def test_layering_check_sees_imports() -> None:
    # The walk must find the domain's own imports, or the test above would pass vacuously.
    assert any("decisioning" in names for names in imported_modules("decisioning").values())


def test_domain_imports_without_web_or_mlflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, importlib, pkgutil, decisioning\n"
        "for m in pkgutil.walk_packages(decisioning.__path__, 'decisioning.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in ('fastapi', 'mlflow', 'serving', 'training') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "", f"importing decisioning loaded {out.stdout.strip()}"
