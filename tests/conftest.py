"""Fixtures every test area shares: an isolated data home per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data home, also exported as CONSENTGEN_HOME for code and CLI under test."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("CONSENTGEN_HOME", str(path))
    return path
