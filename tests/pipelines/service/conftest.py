"""Fixtures of the consent service's tests: a fresh home, and a real server on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipelines.cli.console import ok
from tests.pipelines.service.server import Service, serving


@pytest.fixture
def service_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    ok(home, "init")
    return home


@pytest.fixture
def service(service_home: Path) -> Iterator[Service]:
    with serving(service_home) as running:
        yield running
