"""The consent snapshot: verified, anchored on the head the newest release recorded."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consent import Ledger
from consentgen.errors import CatalogError, LedgerIntegrityError
from pipelines.catalog import Catalog, Release
from pipelines.steps.snapshot import last_release_head, take_snapshot

PURPOSE = "synthetic-training"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _ledger(home: Path, subjects: list[str]) -> Ledger:
    ledger = Ledger.at_home(home)
    ledger.init()
    for s in subjects:
        ledger.grant(s, PURPOSE, effective_at=T0)
    return ledger


def _release(head_seq: int, head_hash: str, version: str = "v0001") -> Release:
    return Release(version=version, snapshot_id="snap", head_seq=head_seq, head_hash=head_hash,
                   n_images=1, release_path=f"releases/{version}", created_at=T0)


def test_a_consistently_rewritten_ledger_fails_the_anchored_snapshot(home: Path) -> None:
    ledger, catalog = _ledger(home, ["a", "b", "c"]), Catalog(home)
    head = ledger.head()
    catalog.add([_release(head.seq, head.hash)])
    assert take_snapshot(ledger, catalog, PURPOSE).head_seq == head.seq

    # the whole ledger is replaced by a self-consistent one of the same length: every hash
    # is right, so only the release's recorded head can tell
    for name in ("consent.duckdb", "consent.duckdb.wal"):
        (home / name).unlink(missing_ok=True)
    forged = _ledger(home, ["a", "b", "x"])
    assert forged.verify().seq == head.seq and forged.head().hash != head.hash
    with pytest.raises(LedgerIntegrityError, match=str(head.seq)):
        take_snapshot(forged, catalog, PURPOSE)


def test_the_anchor_is_the_newest_release(home: Path) -> None:
    ledger, catalog = _ledger(home, ["a", "b"]), Catalog(home)
    assert last_release_head(catalog) is None
    first = ledger.head()
    ledger.grant("c", PURPOSE, effective_at=T0)
    newest = ledger.head()
    catalog.add([_release(first.seq, first.hash), _release(newest.seq, newest.hash, "v0002")])
    assert last_release_head(catalog) == newest


def test_a_run_without_its_own_snapshot_never_gets_the_newest(home: Path) -> None:
    ledger, catalog = _ledger(home, ["a"]), Catalog(home)
    taken = take_snapshot(ledger, catalog, PURPOSE, run_id="run-1")
    assert catalog.snapshot_for_run("run-1") == taken
    assert catalog.snapshot(taken.snapshot_id) == taken
    with pytest.raises(CatalogError, match="run run-2 took no consent snapshot"):
        catalog.snapshot_for_run("run-2")
    with pytest.raises(CatalogError, match="no consent snapshot 'snap-nope'"):
        catalog.snapshot("snap-nope")


def test_copying_a_home_keeps_its_anchor(home: Path, tmp_path: Path) -> None:
    ledger, catalog = _ledger(home, ["a"]), Catalog(home)
    head = ledger.head()
    catalog.add([_release(head.seq, head.hash)])
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    assert take_snapshot(Ledger.at_home(copy), Catalog(copy), PURPOSE).head_hash == head.hash
