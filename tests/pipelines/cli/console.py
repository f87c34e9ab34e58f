"""The installed console script, run as a user runs it: a real subprocess on a home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).with_name("consentgen"))


def run(home: Path, *args: str, timeout: float = 600,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`consentgen ARGS` with CONSENTGEN_HOME=home (wide columns: no wrapped lines)."""
    full = {**os.environ, "CONSENTGEN_HOME": str(home), "COLUMNS": "300", **(env or {})}
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=full, timeout=timeout)


def ok(home: Path, *args: str, **kwargs: object) -> str:
    """Its stdout; fails the test (with its stderr) unless it exits 0."""
    done = run(home, *args, **kwargs)  # type: ignore[arg-type]
    assert done.returncode == 0, done.stderr
    return done.stdout
