"""generators/ stays independent: no Dagster, DuckDB or sibling packages (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import generators

FORBIDDEN = {"dagster", "duckdb", "pipelines", "consent", "validation"}
PACKAGE = Path(generators.__file__).parent


def _imported_top_levels(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_imports_a_forbidden_package() -> None:
    sources = sorted(PACKAGE.glob("*.py"))
    assert len(sources) >= 10
    offenders = {p.name: _imported_top_levels(p) & FORBIDDEN for p in sources}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_the_checker_sees_imports() -> None:
    assert "consentgen" in _imported_top_levels(PACKAGE / "shards.py") | _imported_top_levels(
        PACKAGE / "errors.py"
    )


def test_every_documented_export_resolves() -> None:
    for name in generators.__all__:
        assert getattr(generators, name) is not None, name
        assert name in (generators.__doc__ or ""), f"{name} is exported but not documented"
