"""The ledger on real DuckDB files: appends, idempotency, time semantics, tamper evidence."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import datetime

import duckdb
import pytest

from consent import ConsentEvent, ConsentStatus, Head, Ledger
from consent.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from consentgen.errors import (
    EventConflictError,
    InvalidEventError,
    LedgerIntegrityError,
    LedgerLockedError,
)
from tests.consent.conftest import PURPOSE, day


def tamper(ledger: Ledger, *statements: str) -> None:
    con = duckdb.connect(str(ledger.path))
    try:
        for statement in statements:
            con.execute(statement)
    finally:
        con.close()


def integrity_error(ledger: Ledger, **kwargs) -> LedgerIntegrityError:
    with pytest.raises(LedgerIntegrityError) as info:
        ledger.verify(**kwargs)
    return info.value


# --- appends ------------------------------------------------------------------------------


def test_append_chains_from_genesis(ledger: Ledger) -> None:
    first = ledger.grant("alice", PURPOSE, effective_at=day(0))
    second = ledger.revoke("alice", PURPOSE, effective_at=day(1))
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert second.hash == chain_hash(first.hash, canonical_bytes(second.hashed_fields()))
    assert ledger.head() == Head(2, second.hash)
    assert ledger.verify() == Head(2, second.hash)


def test_same_event_twice_is_one_event(ledger: Ledger) -> None:
    a = ledger.grant("alice", PURPOSE, event_id="form-1", effective_at=day(0))
    b = ledger.grant("alice", PURPOSE, event_id="form-1", effective_at=day(0))
    assert a == b
    assert ledger.head().seq == 1


def test_retry_without_effective_time_matches_the_stored_event(ledger: Ledger) -> None:
    a = ledger.grant("alice", PURPOSE, event_id="form-1")
    time.sleep(0.01)
    b = ledger.grant("alice", PURPOSE, event_id="form-1")
    assert a.seq == b.seq == 1 and a.effective_at == b.effective_at


def test_same_id_with_other_content_is_refused_and_nothing_changes(ledger: Ledger) -> None:
    ledger.grant("alice", PURPOSE, event_id="form-1", effective_at=day(0))
    before = ledger.head()
    with pytest.raises(EventConflictError, match="form-1"):
        ledger.grant("bob", PURPOSE, event_id="form-1", effective_at=day(0))
    batch = [
        ConsentEvent.parse({"subject_id": "carol", "purpose": PURPOSE, "action": "grant"}),
        ConsentEvent.parse({"subject_id": "alice", "purpose": PURPOSE, "action": "revoke",
                            "event_id": "form-1"}),
    ]
    with pytest.raises(EventConflictError):
        ledger.append_many(batch)
    assert ledger.head() == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"effective_at": datetime(2026, 1, 1)}, "naive"),
        ({"subject_id": ""}, "subject_id"),
        ({"subject_id": " alice"}, "whitespace"),
        ({"subject_id": "al\nice"}, "control"),
        ({"action": "maybe"}, "action"),
        ({"purpose": "Synthetic Training"}, "purpose"),
        ({"expires_at": "2025-01-01T00:00:00Z", "effective_at": "2026-01-01T00:00:00Z"}, "after"),
        ({"action": "revoke", "expires_at": "2027-01-01T00:00:00Z"}, "revoke"),
        ({"effective_at": "yesterday"}, "ISO-8601"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_events_are_refused_with_a_reason(ledger: Ledger, fields: dict, message: str) -> None:
    data = {"subject_id": "alice", "purpose": PURPOSE, "action": "grant", **fields}
    with pytest.raises(InvalidEventError, match=message):
        ledger.append(ConsentEvent.parse(data))
    assert ledger.head().seq == 0


def test_locked_ledger_gives_a_clear_error_after_the_bounded_wait(ledger: Ledger) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(ledger.path)!r})
            print("held", flush=True)
            time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        impatient = Ledger(ledger.path, max_wait_s=0.5)
        with pytest.raises(LedgerLockedError, match="locked by another process"):
            impatient.grant("alice", PURPOSE)
        with pytest.raises(LedgerLockedError):
            impatient.eligible(PURPOSE)
    finally:
        holder.kill()
        holder.wait()
    assert ledger.grant("alice", PURPOSE).seq == 1  # usable again once released


# --- time semantics -------------------------------------------------------------------------


def test_no_record_means_no_consent(ledger: Ledger) -> None:
    state = ledger.state("stranger", PURPOSE, day(0))
    assert not state.granted and state.status is ConsentStatus.UNKNOWN
    assert ledger.eligible(PURPOSE, day(0)) == []


def test_backdated_revocation_applies_from_its_effective_time(ledger: Ledger) -> None:
    ledger.grant("alice", PURPOSE, effective_at=day(0))
    before_revoke = ledger.head()
    ledger.revoke("alice", PURPOSE, effective_at=day(5))  # recorded now, effective day 5
    assert ledger.state("alice", PURPOSE, day(4)).granted
    assert ledger.state("alice", PURPOSE, day(6)).status is ConsentStatus.WITHDRAWN
    # what a build that snapshotted the ledger before the revoke was allowed to see
    assert ledger.state("alice", PURPOSE, day(6), as_of_seq=before_revoke.seq).granted
    assert ledger.eligible(PURPOSE, day(6), as_of_seq=before_revoke.seq) == ["alice"]
    assert ledger.eligible(PURPOSE, day(6)) == []


def test_future_dated_grant_is_not_yet_consent(ledger: Ledger) -> None:
    ledger.grant("alice", PURPOSE, effective_at=day(10))
    assert not ledger.state("alice", PURPOSE, day(9)).granted
    assert ledger.state("alice", PURPOSE, day(10)).granted


def test_expiry_is_exclusive_and_a_new_grant_renews(ledger: Ledger) -> None:
    ledger.grant("alice", PURPOSE, effective_at=day(0), expires_at=day(30))
    assert ledger.state("alice", PURPOSE, day(29.9)).granted
    expired = ledger.state("alice", PURPOSE, day(30))
    assert expired.status is ConsentStatus.EXPIRED and not expired.granted
    ledger.grant("alice", PURPOSE, effective_at=day(40))
    assert ledger.eligible(PURPOSE, day(35)) == []
    assert ledger.eligible(PURPOSE, day(41)) == ["alice"]


def test_same_effective_time_goes_to_the_later_recorded_event(ledger: Ledger) -> None:
    ledger.grant("alice", PURPOSE, effective_at=day(1))
    ledger.revoke("alice", PURPOSE, effective_at=day(1))
    ledger.grant("bob", PURPOSE, effective_at=day(1))
    assert ledger.eligible(PURPOSE, day(2)) == ["bob"]
    assert ledger.state("alice", PURPOSE, day(2)).deciding_event.seq == 2


def test_purposes_are_separate(ledger: Ledger) -> None:
    ledger.grant("alice", PURPOSE, effective_at=day(0))
    assert ledger.eligible("model-evaluation", day(1)) == []
    assert ledger.eligible(PURPOSE, day(1)) == ["alice"]


# --- tamper evidence ------------------------------------------------------------------------


def test_intact_ledger_verifies(filled: Ledger) -> None:
    assert filled.verify().seq == 10


def test_edited_field_is_caught_at_its_sequence(filled: Ledger) -> None:
    stored = filled.events()[3].hash
    tamper(filled, "UPDATE events SET subject_id = 'mallory' WHERE seq = 4")
    err = integrity_error(filled)
    assert err.seq == 4 and err.found == stored and err.expected != stored


def test_edited_time_is_caught(filled: Ledger) -> None:
    tamper(filled, "UPDATE events SET effective_at = effective_at + INTERVAL 1 SECOND WHERE seq = 7")
    assert integrity_error(filled).seq == 7


def test_deleted_row_is_caught(filled: Ledger) -> None:
    tamper(filled, "DELETE FROM events WHERE seq = 5")
    err = integrity_error(filled)
    assert err.seq == 5 and "missing" in err.detail


def test_deleted_first_row_is_caught(filled: Ledger) -> None:
    tamper(filled, "DELETE FROM events WHERE seq = 1")
    assert integrity_error(filled).seq == 1


def test_swapped_rows_are_caught(filled: Ledger) -> None:
    # exchange the contents of events 3 and 6 (everything but the sequence numbers)
    cols = "event_id, subject_id, purpose, action, effective_at, expires_at, recorded_at, actor, source, prev_hash, hash"
    tamper(
        filled,
        f"CREATE TABLE t AS SELECT seq, {cols} FROM events WHERE seq IN (3, 6)",
        "DELETE FROM events WHERE seq IN (3, 6)",
        f"INSERT INTO events SELECT 9 - seq, {cols} FROM t",
    )
    assert integrity_error(filled).seq == 3


def test_forged_row_inserted_in_the_middle_is_caught(filled: Ledger) -> None:
    rows = filled.events()
    forged = rows[4].hashed_fields() | {"seq": 5, "event_id": "forged", "subject_id": "mallory"}
    forged_hash = chain_hash(rows[3].hash, canonical_bytes(forged))  # a well-made forgery
    cols = "seq, event_id, subject_id, purpose, action, effective_at, expires_at, recorded_at, actor, source, prev_hash, hash"
    tamper(
        filled,
        f"CREATE TABLE t AS SELECT {cols} FROM events WHERE seq >= 5",
        "DELETE FROM events WHERE seq >= 5",
        f"INSERT INTO events SELECT seq + 1, {cols.split(', ', 1)[1]} FROM t",
        f"INSERT INTO events SELECT 5, 'forged', 'mallory', purpose, action, effective_at, expires_at, "
        f"recorded_at, actor, source, '{rows[3].hash}', '{forged_hash}' FROM t WHERE seq = 5",
    )
    # the forgery links and hashes correctly, but the head recorded when event 5 was
    # appended names another hash (and the renumbered successor no longer hashes either)
    err = integrity_error(filled)
    assert err.seq == 5 and err.found == forged_hash and err.expected == rows[4].hash


def test_forged_tail_row_with_a_valid_hash_is_caught_by_the_heads_log(filled: Ledger) -> None:
    last = filled.events()[-1]
    forged = last.hashed_fields() | {"seq": 11, "event_id": "forged", "subject_id": "mallory"}
    digest = chain_hash(last.hash, canonical_bytes(forged))
    tamper(
        filled,
        f"INSERT INTO events SELECT 11, 'forged', 'mallory', purpose, action, effective_at, expires_at, "
        f"recorded_at, actor, source, '{last.hash}', '{digest}' FROM events WHERE seq = 10",
    )
    err = integrity_error(filled)
    assert err.seq == 11 and "not written by any append" in err.detail


def test_truncated_tail_is_caught(filled: Ledger) -> None:
    eighth = filled.events()[7].hash
    tamper(filled, "DELETE FROM events WHERE seq > 7")
    err = integrity_error(filled)
    assert err.seq == 8 and err.expected == eighth and err.found is None
    assert "truncated" in err.detail


def test_external_anchor_catches_a_rewritten_history(filled: Ledger) -> None:
    anchor = filled.head()
    tamper(filled, "DELETE FROM events WHERE seq > 8", "DELETE FROM heads WHERE seq > 8")
    assert filled.verify().seq == 8  # consistent on its own...
    err = integrity_error(filled, anchor=anchor)  # ...but not with what a release recorded
    assert err.seq == 9


def test_rewritten_hash_is_caught_at_the_next_link(filled: Ledger) -> None:
    tamper(filled, "UPDATE events SET hash = repeat('0', 64) WHERE seq = 10")
    assert integrity_error(filled).seq == 10
    tamper(filled, "UPDATE events SET prev_hash = repeat('1', 64) WHERE seq = 2")
    err = integrity_error(filled)
    assert err.seq == 2 and err.found == "1" * 64


def test_kept_open_writer_appends_one_transaction_each(ledger: Ledger) -> None:
    with ledger.writer() as writer:
        first = writer.append(ConsentEvent(subject_id="a", purpose=PURPOSE, action="grant"))
        with pytest.raises(EventConflictError):
            writer.append(ConsentEvent(subject_id="b", purpose=PURPOSE, action="grant",
                                       event_id=first.event_id))
        second = writer.append(ConsentEvent(subject_id="b", purpose=PURPOSE, action="grant"))
    assert (first.seq, second.seq) == (1, 2) and second.prev_hash == first.hash
    assert ledger.verify() == Head(2, second.hash)
