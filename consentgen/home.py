"""Where a deployment keeps its files (DESIGN.md, "Data home")."""

from __future__ import annotations

import os
from pathlib import Path

from consentgen.errors import NoDataHomeError

HOME_ENV = "CONSENTGEN_HOME"
DEFAULT_HOME = Path("data")
LEDGER_FILE = "consent.duckdb"
CATALOG_FILE = "catalog.duckdb"
BUILD_FILE = "consentgen.toml"
HOME_MARKERS = (LEDGER_FILE, CATALOG_FILE, BUILD_FILE)
"""A folder holding any of these is a data home (older homes have no build file)."""

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


def is_data_home(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a data home: a folder with a ledger, a catalog or a build file."""
    folder = Path(path)
    return folder.is_dir() and any((folder / name).exists() for name in HOME_MARKERS)


def existing_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data home (as `data_home` finds it), which must exist already.

    Only `consentgen init` creates a home: every other command goes through here, so a
    command run from the wrong folder or with a mistyped `CONSENTGEN_HOME` stops in one
    line instead of creating a new, empty home and writing consent into it.
    """
    root = data_home(explicit)
    if not is_data_home(root):
        raise NoDataHomeError(f"no data home at {root} (run `consentgen init`)")
    return root


def ledger_path(home: str | os.PathLike[str] | None = None) -> Path:
    return data_home(home) / LEDGER_FILE


def catalog_path(home: str | os.PathLike[str] | None = None) -> Path:
    return data_home(home) / CATALOG_FILE
