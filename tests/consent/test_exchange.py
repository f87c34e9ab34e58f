"""Import (all-or-nothing, every bad line reported) and export (JSONL, Parquet, ISO 27560)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from consent import Ledger, export, import_events, iso27560_records
from consentgen.errors import ConfigError, ImportRejectedError
from tests.consent.conftest import PURPOSE, day

GOOD_CSV = """event_id,subject_id,purpose,action,effective_at,expires_at,actor,source
f-1,alice,synthetic-training,grant,2026-01-01T00:00:00Z,,officer,form-v1
f-2,bob,synthetic-training,grant,2026-01-02T00:00:00+01:00,2026-02-01T00:00:00Z,officer,form-v1
f-3,alice,synthetic-training,revoke,2026-03-01T00:00:00Z,,officer,receipt-9
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_csv_import_appends_every_event_in_one_transaction(ledger: Ledger, tmp_path: Path) -> None:
    result = import_events(ledger, write(tmp_path, "events.csv", GOOD_CSV))
    assert [e.event_id for e in result.appended] == ["f-1", "f-2", "f-3"]
    assert ledger.eligible(PURPOSE, day(10)) == ["alice", "bob"]
    assert ledger.eligible(PURPOSE, day(70)) == []
    again = import_events(ledger, write(tmp_path, "events.csv", GOOD_CSV))
    assert (len(again.appended), len(again.already_present)) == (0, 3)
    assert ledger.head().seq == 3


def test_jsonl_import(ledger: Ledger, tmp_path: Path) -> None:
    lines = [
        {"subject_id": "alice", "purpose": PURPOSE, "action": "grant", "effective_at": "2026-01-01T00:00:00Z"},
        {"subject_id": "bob", "purpose": PURPOSE, "action": "grant", "event_id": "x", "actor": "api",
         "effective_at": "2026-01-02T00:00:00Z"},
    ]
    path = write(tmp_path, "events.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert len(import_events(ledger, path).appended) == 2


def test_every_bad_line_is_reported_and_nothing_is_appended(ledger: Ledger, tmp_path: Path) -> None:
    ledger.grant("zoe", PURPOSE, event_id="taken", effective_at=day(0))
    before = ledger.head()
    bad = GOOD_CSV + "\n".join([
        "f-4,carol,synthetic-training,maybe,2026-01-01T00:00:00Z,,officer,x",        # line 5
        "f-5,dave,synthetic-training,grant,2026-01-01T00:00:00,,officer,x",          # line 6 naive
        "f-6,,synthetic-training,grant,2026-01-01T00:00:00Z,,officer,x",             # line 7 empty
        "f-1,mallory,synthetic-training,grant,2026-01-01T00:00:00Z,,officer,x",      # line 8 dup id
        "f-7,erin,synthetic-training,grant",                                          # line 9 short
        "f-8,frank,synthetic-training,grant,2026-05-01T00:00:00Z,2026-04-01T00:00:00Z,o,x",  # 10
    ]) + "\n"
    with pytest.raises(ImportRejectedError) as info:
        import_events(ledger, write(tmp_path, "bad.csv", bad))
    lines = [line for line, _ in info.value.problems]
    assert lines == [5, 6, 7, 8, 9, 10]
    reasons = dict(info.value.problems)
    assert "action" in reasons[5] and "naive" in reasons[6] and "subject_id" in reasons[7]
    assert "repeats line 2" in reasons[8] and "expected 8 fields" in reasons[9]
    assert "after" in reasons[10]
    assert ledger.head() == before


def test_conflict_with_the_ledger_names_the_line(ledger: Ledger, tmp_path: Path) -> None:
    ledger.grant("zoe", PURPOSE, event_id="f-2", effective_at=day(0))
    before = ledger.head()
    with pytest.raises(ImportRejectedError) as info:
        import_events(ledger, write(tmp_path, "e.csv", GOOD_CSV))
    assert [line for line, _ in info.value.problems] == [3]
    assert ledger.head() == before


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("e.csv", "who,what\nalice,grant\n", "missing column"),
        ("e.csv", "subject_id,purpose,action,colour\n", "unknown column"),
        ("e.csv", "", "no events"),
        ("e.jsonl", '{"subject_id": "a", "purpose": "p", "action": "grant"}\n[1]\n{oops\n', "line 2"),
        ("e.jsonl", '{"subject_id": "a", "purpose": "p", "action": "grant", "seq": 1.5}\n', "floating"),
    ],
)
def test_wrong_files_are_rejected_whole(ledger: Ledger, tmp_path: Path, name, content, match) -> None:
    with pytest.raises(ImportRejectedError, match=match):
        import_events(ledger, write(tmp_path, name, content))
    assert ledger.head().seq == 0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "absent.csv", "no such file"),
        (lambda d: write(d, "latin.csv", b"subject_id,purpose,action\n\xe9,p,grant\n"), "not UTF-8"),
        (lambda d: write(d, "events.xlsx", b"PK"), "unknown import format"),
        (lambda d: (d / "dir.csv").mkdir() or d / "dir.csv", "directory"),
    ],
)
def test_unreadable_files_give_a_clear_error(ledger: Ledger, tmp_path: Path, make, match) -> None:
    with pytest.raises(ConfigError, match=match):
        import_events(ledger, make(tmp_path))
    assert ledger.head().seq == 0


def test_jsonl_export_reimports_idempotently(filled: Ledger, tmp_path: Path, home: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert export(filled, "jsonl", out) == 10
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, 11)) and rows[0]["hash"] == filled.events()[0].hash
    other = Ledger(tmp_path / "other.duckdb")
    first = import_events(other, out)
    assert len(first.appended) == 10
    assert [e.event_id for e in other.events()] == [r["event_id"] for r in rows]
    assert len(import_events(other, out).already_present) == 10


def test_parquet_export(filled: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    assert export(filled, "parquet", out) == 10
    table = pq.read_table(out)
    assert table.num_rows == 10 and table.column("seq").to_pylist() == list(range(1, 11))
    assert str(table.schema.field("effective_at").type) == "timestamp[us, tz=UTC]"


def test_iso27560_records_carry_dpv_states(ledger: Ledger, tmp_path: Path) -> None:
    ledger.grant("given", PURPOSE, effective_at=day(0))
    ledger.grant("gone", PURPOSE, effective_at=day(0))
    ledger.revoke("gone", PURPOSE, effective_at=day(3))
    ledger.grant("lapsed", PURPOSE, effective_at=day(0), expires_at=day(2))
    records = {r["pii_principal_id"]: r for r in iso27560_records(ledger, at=day(5))}
    assert records["given"]["consent_status"] == "dpv:ConsentGiven"
    assert records["gone"]["consent_status"] == "dpv:ConsentWithdrawn"
    assert records["lapsed"]["consent_status"] == "dpv:ConsentExpired"
    assert [e["consent_status"] for e in records["gone"]["events"]] == [
        "dpv:ConsentGiven", "dpv:ConsentWithdrawn"]
    assert records["given"]["ledger_head"]["seq"] == 4
    out = tmp_path / "records.jsonl"
    assert export(ledger, "iso27560", out) == 3
    assert all(json.loads(x)["@type"] == "dpv:ConsentRecord" for x in out.read_text().splitlines())
