"""Where a deployment keeps its files (DESIGN.md, "Data home")."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "CONSENTGEN_HOME"
DEFAULT_HOME = Path("data")
LEDGER_FILE = "consent.duckdb"
CATALOG_FILE = "catalog.duckdb"

# The folders of a home, named once: the steps that write them and the sweep and erasure
# that clean them up read the same names (and none of those needs torch to know them).
SOURCES_DIR = "sources"
"""Normalised, metadata-free source PNGs, content-addressed."""
MODELS_DIR = "models"
"""Generator checkpoints, `models/<shard>/<version>/`."""
CANDIDATES_DIR = "candidates"
"""Sampled candidate PNGs, `candidates/<candidate id>.png`."""
RELEASES_DIR = "releases"
"""Published versions, `releases/vNNNN/`, and `releases/LATEST`."""


def data_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data home: an explicit path, else `$CONSENTGEN_HOME`, else `./data`."""
    raw = explicit if explicit is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


def ledger_path(home: str | os.PathLike[str] | None = None) -> Path:
    return data_home(home) / LEDGER_FILE


def catalog_path(home: str | os.PathLike[str] | None = None) -> Path:
    return data_home(home) / CATALOG_FILE
