"""validation.audit stays a leaf: no Dagster, DuckDB, pipelines, consent or generators."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("dagster", "duckdb", "pipelines", "consent", "generators")


def test_importing_the_audit_pulls_in_no_forbidden_package() -> None:
    code = (
        "import sys, validation.audit\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
