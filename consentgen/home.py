"""Where a deployment keeps its files (DESIGN.md, "Data home")."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "CONSENTGEN_HOME"
DEFAULT_HOME = Path("data")
LEDGER_FILE = "consent.duckdb"
CATALOG_FILE = "catalog.duckdb"


def data_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data home: an explicit path, else `$CONSENTGEN_HOME`, else `./data`."""
    raw = explicit if explicit is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


def ledger_path(home: str | os.PathLike[str] | None = None) -> Path:
    return data_home(home) / LEDGER_FILE


def catalog_path(home: str | os.PathLike[str] | None = None) -> Path:
    return data_home(home) / CATALOG_FILE
