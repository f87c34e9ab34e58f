"""Imported lines without an event id get one derived from their content, so the ledger's
idempotency by event id makes a file imported twice appended once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from consent import Ledger, import_events, read_events
from tests.consent.conftest import PURPOSE

NO_IDS = """subject_id,purpose,action,effective_at,expires_at,actor,source
alice,synthetic-training,grant,2026-01-01T00:00:00Z,2027-01-01T00:00:00Z,cmp,form-v1
bob,synthetic-training,grant,2026-01-02T00:00:00Z,,cmp,form-v1
alice,synthetic-training,revoke,2026-03-01T00:00:00Z,,cmp,receipt-9
carol,synthetic-training,grant,,,cmp,form-v1
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
    assert [(e.subject_id, e.source) for e in result.appended] == [("alice", "receipt-10"),
                                                                   ("carol", "form-v1")]


def test_an_untimed_line_in_a_later_file_is_a_new_event(ledger: Ledger, tmp_path: Path) -> None:
    """A line without an effective time means "now": a second revoke after a re-grant,
    sent as the same line in a new file, must not be taken for the first one."""
    revoke = "subject_id,purpose,action,actor\ndave,synthetic-training,revoke,cmp\n"
    grant = "subject_id,purpose,action,actor\ndave,synthetic-training,grant,cmp\n"
    import_events(ledger, write(tmp_path / "1.csv", grant))
    import_events(ledger, write(tmp_path / "2.csv", revoke))
    import_events(ledger, write(tmp_path / "3.csv", grant + "erin,synthetic-training,grant,cmp\n"))
    assert ledger.eligible(PURPOSE) == ["dave", "erin"]
    later = import_events(ledger, write(tmp_path / "4.csv", revoke + "\n"))
    assert len(later.appended) == 1
    assert ledger.eligible(PURPOSE) == ["erin"]
    assert ledger.head().seq == 5


def test_given_ids_are_kept_and_derived_ids_are_stable(tmp_path: Path) -> None:
    text = "event_id,subject_id,purpose,action,effective_at\nmine,a,synthetic-training,grant,2026-01-01T00:00:00Z\n" \
           ",b,synthetic-training,grant,2026-01-01T00:00:00Z\n"
    first = read_events(write(tmp_path / "x.csv", text))
    second = read_events(write(tmp_path / "y.csv", text))
    assert first[0][1].event_id == "mine"
    assert first[1][1].event_id == second[1][1].event_id != "mine"
