"""Imported lines without an event id get one derived from their content alone, so the
ledger's idempotency by event id makes a file imported twice, or an export that grew,
append each fact once; a line must say when its consent took effect."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from consent import Ledger, import_events, read_events
from consentgen.errors import ImportRejectedError
from tests.consent.conftest import PURPOSE

NO_IDS = """subject_id,purpose,action,effective_at,expires_at,actor,source
alice,synthetic-training,grant,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,cmp,form-v1
bob,synthetic-training,grant,2026-01-02T00:00:00Z,,cmp,form-v1
alice,synthetic-training,revoke,2026-03-01T00:00:00Z,,cmp,receipt-9
carol,synthetic-training,grant,2026-01-03T00:00:00Z,,cmp,form-v1
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_without_ids_imported_twice_is_appended_once(ledger: Ledger, tmp_path: Path) -> None:
    path = write(tmp_path / "cmp.csv", NO_IDS)
    first = import_events(ledger, path)
    assert len(first.appended) == 4 and not first.already_present
    head = ledger.head()
    again = import_events(ledger, path)
    assert (len(again.appended), len(again.already_present)) == (0, 4)
    assert ledger.head() == head
    assert {e.event_id for e in again.already_present} == {e.event_id for e in first.appended}
    assert all(uuid.UUID(e.event_id).version == 5 for e in first.appended)


def test_the_same_fact_in_another_file_is_the_same_event(ledger: Ledger, tmp_path: Path) -> None:
    """Timed lines are identified by their content alone: same times written in another
    zone, columns in another order, from JSON Lines, still the same event."""
    import_events(ledger, write(tmp_path / "a.csv", NO_IDS))
    head = ledger.head()
    same = [
        {"action": "grant", "subject_id": "bob", "purpose": PURPOSE, "source": "form-v1",
         "effective_at": "2026-01-02T01:00:00+01:00", "actor": "cmp"},
        {"subject_id": "alice", "purpose": PURPOSE, "action": "revoke",
         "effective_at": "2026-03-01T00:00:00Z", "actor": "cmp", "source": "receipt-9"},
    ]
    path = write(tmp_path / "b.jsonl", "\n".join(json.dumps(x) for x in same) + "\n")
    result = import_events(ledger, path)
    assert (len(result.appended), len(result.already_present)) == (0, 2)
    assert ledger.head() == head


def test_other_content_is_another_event(ledger: Ledger, tmp_path: Path) -> None:
    import_events(ledger, write(tmp_path / "a.csv", NO_IDS))
    other = NO_IDS.replace("receipt-9", "receipt-10")  # one field of one line differs
    result = import_events(ledger, write(tmp_path / "b.csv", other))
    assert [(e.subject_id, e.source) for e in result.appended] == [("alice", "receipt-10")]


def test_an_export_that_grew_appends_only_its_new_lines(ledger: Ledger, tmp_path: Path) -> None:
    """A consent platform's export, re-read each night as it grows: the old grant must not
    come back after the later revoke (ids are content only, not file and line)."""
    header = "subject_id,purpose,action,effective_at,actor\n"
    lines = ["dave,synthetic-training,grant,2026-01-01T00:00:00Z,cmp\n",
             "dave,synthetic-training,revoke,2026-02-01T00:00:00Z,cmp\n",
             "erin,synthetic-training,grant,2026-02-02T00:00:00Z,cmp\n",
             "dave,synthetic-training,grant,2026-03-01T00:00:00Z,cmp\n",
             "dave,synthetic-training,revoke,2026-04-01T00:00:00Z,cmp\n"]
    appended = []
    for n in range(1, len(lines) + 1):
        result = import_events(ledger, write(tmp_path / "cmp.csv", header + "".join(lines[:n])))
        appended.append(len(result.appended))
        if n == 3:
            assert ledger.eligible(PURPOSE) == ["erin"]
        if n == 4:
            assert ledger.eligible(PURPOSE) == ["dave", "erin"]
    assert appended == [1, 1, 1, 1, 1]
    assert ledger.eligible(PURPOSE) == ["erin"]
    assert ledger.head().seq == 5


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("blank.csv", "subject_id,purpose,action,effective_at\n"
                      "ann,synthetic-training,grant,2026-01-01T00:00:00Z\n"
                      "dave,synthetic-training,grant,\n", 3),
        ("nocolumn.csv", "subject_id,purpose,action,actor\ndave,synthetic-training,grant,cmp\n", 1),
        ("given-id.csv", "event_id,subject_id,purpose,action,effective_at\n"
                         "x1,dave,synthetic-training,revoke,\n", 2),
        ("e.jsonl", json.dumps({"subject_id": "ann", "purpose": PURPOSE, "action": "grant",
                                "effective_at": "2026-01-01T00:00:00Z"}) + "\n"
                    + json.dumps({"subject_id": "dave", "purpose": PURPOSE, "action": "grant",
                                  "event_id": "x2"}) + "\n", 2),
    ],
)
def test_a_line_without_effective_at_is_refused_and_nothing_is_imported(
        ledger: Ledger, tmp_path: Path, name: str, text: str, line: int) -> None:
    """"Now" is no fact of the source system: an untimed line would land wherever the
    import happens to run, after revokes it preceded."""
    with pytest.raises(ImportRejectedError) as info:
        import_events(ledger, write(tmp_path / name, text))
    assert len(info.value.problems) == 1
    where, why = info.value.problems[0]
    assert where == line and "effective_at is required in an import" in why
    assert f"line {line}: effective_at is required" in str(info.value)
    assert ledger.head().seq == 0


def test_untimed_lines_are_reported_with_their_other_faults(ledger: Ledger, tmp_path: Path) -> None:
    text = ("subject_id,purpose,action,effective_at\n"
            "dave,synthetic-training,maybe,\n"
            "erin,synthetic-training,grant,\n")
    with pytest.raises(ImportRejectedError) as info:
        import_events(ledger, write(tmp_path / "e.csv", text))
    reasons = dict(info.value.problems)
    assert sorted(reasons) == [2, 3]
    assert "effective_at is required" in reasons[2] and "action" in reasons[2]
    assert ledger.head().seq == 0


def test_iso27560_records_import_as_their_events(filled: Ledger, tmp_path: Path) -> None:
    """A 27560 record's history carries each event's effective time (the ledger stores one
    for every event), so an export of records re-imports as the same events and states."""
    from consent import export, iso27560_records

    out = tmp_path / "records.jsonl"
    assert export(filled, "iso27560", out) == 4
    other = Ledger(tmp_path / "other.duckdb")
    assert len(import_events(other, out).appended) == 10
    assert len(import_events(other, out).already_present) == 10
    assert len(import_events(filled, out).already_present) == 10
    def key(e):
        return (e.event_id, e.subject_id, e.action, e.effective_at, e.expires_at, e.actor, e.source)
    assert sorted(map(key, other.events())) == sorted(map(key, filled.events()))
    at = filled.events()[-1].effective_at
    def states(ledger: Ledger) -> list:
        return [(r["pii_principal_id"], r["consent_status"]) for r in iso27560_records(ledger, at)]
    assert states(other) == states(filled)


def test_an_iso27560_entry_without_effective_at_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    record = {"schema_version": "https://w3id.org/dpv/schema/iso-27560#record",
              "pii_principal_id": "dave", "purpose": PURPOSE,
              "events": [{"event_id": "g", "consent_status": "dpv:ConsentGiven",
                          "effective_at": "2026-01-01T00:00:00Z"},
                         {"event_id": "r", "consent_status": "dpv:ConsentWithdrawn"},
                         {"event_id": "x", "consent_status": "dpv:ConsentRefused",
                          "effective_at": "2026-02-01T00:00:00Z"}]}
    good = {"subject_id": "ann", "purpose": PURPOSE, "action": "grant",
            "effective_at": "2026-01-01T00:00:00Z"}
    path = write(tmp_path / "r.jsonl", json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ImportRejectedError) as info:
        import_events(ledger, path)
    assert [line for line, _ in info.value.problems] == [2, 2]
    first, second = (why for _, why in info.value.problems)
    assert first.startswith("events[1]: effective_at is required in an import")
    assert second.startswith("events[2]: consent_status 'dpv:ConsentRefused' is no grant")
    assert ledger.head().seq == 0


def test_given_ids_are_kept_and_derived_ids_are_stable(tmp_path: Path) -> None:
    text = "event_id,subject_id,purpose,action,effective_at\nmine,a,synthetic-training,grant,2026-01-01T00:00:00Z\n" \
           ",b,synthetic-training,grant,2026-01-01T00:00:00Z\n"
    first = read_events(write(tmp_path / "x.csv", text))
    second = read_events(write(tmp_path / "y.csv", text))
    assert first[0][1].event_id == "mine"
    assert first[1][1].event_id == second[1][1].event_id != "mine"
