"""Ledger fixtures: real DuckDB files in a temporary data home."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consent import Ledger

PURPOSE = "synthetic-training"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


@pytest.fixture
def ledger(home: Path) -> Ledger:
    ledger = Ledger.at_home(home, max_wait_s=5)
    ledger.init()
    return ledger


@pytest.fixture
def filled(ledger: Ledger) -> Ledger:
    """Ten events across four subjects, appended one transaction each."""
    for i in range(10):
        subject = f"s{i % 4}"
        if i % 3 == 2:
            ledger.revoke(subject, PURPOSE, effective_at=day(i), event_id=f"e{i:02d}")
        else:
            ledger.grant(subject, PURPOSE, effective_at=day(i), event_id=f"e{i:02d}", actor="t")
    return ledger
