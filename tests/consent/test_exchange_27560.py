"""ISO/IEC TS 27560 records with DPV states: our export round-trips exactly, the four
understood states (ConsentExpired included) map onto events, anything else is refused
with the reason and the field; the parsers work on text and on objects, not only files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from consent import ConsentStatus, Ledger, import_events, iso27560_records
from consent.exchange import ImportProblemsError, parse_objects, parse_text
from consent.iso27560 import DPV, ISO27560_SCHEMA
from consent.state import (
    EXPIRY_SOURCE,
    OPERATOR_WITHDRAWAL_SOURCE,
    consent_ended_at,
    event_status,
)
from tests.consent.conftest import PURPOSE, day

AT = day(40)
LEDGER_ASSIGNED = ("seq", "recorded_at", "hash")


def record(subject: str, *entries: dict, **extra: object) -> dict:
    return {"@context": {"dpv": DPV}, "@type": "dpv:ConsentRecord", "schema_version": ISO27560_SCHEMA,
            "pii_principal_id": subject, "purpose": PURPOSE, "events": list(entries), **extra}


def entry(status: str, effective: float, **fields: object) -> dict:
    return {"consent_status": f"dpv:{status}", "effective_at": day(effective).isoformat(), **fields}


def comparable(records: list[dict]) -> list[dict]:
    """The records without what a ledger assigns itself (sequence, times, hashes, head)."""
    out = copy.deepcopy(records)
    for r in out:
        r.pop("ledger_head")
        for e in r["events"]:
            for name in LEDGER_ASSIGNED:
                e.pop(name)
    return out


def append(ledger: Ledger, items: list) -> int:
    return len(ledger.append_many([p.event for p in parse_objects(items, "test")]).appended)


@pytest.fixture
def varied(ledger: Ledger) -> Ledger:
    """Every state a record can be in at AT, through every way one gets there."""
    ledger.grant("given", PURPOSE, effective_at=day(0), actor="cmp")
    ledger.grant("gone", PURPOSE, effective_at=day(0))
    ledger.revoke("gone", PURPOSE, effective_at=day(5), source="receipt-9")
    ledger.grant("gone", "model-evaluation", effective_at=day(1))
    ledger.grant("operator", PURPOSE, effective_at=day(0))
    ledger.revoke("operator", PURPOSE, effective_at=day(6), source=OPERATOR_WITHDRAWAL_SOURCE)
    ledger.grant("lapsed", PURPOSE, effective_at=day(0), expires_at=day(10))
    ledger.grant("later", PURPOSE, effective_at=day(90))  # ConsentUnknown at AT
    append(ledger, [record("stated", entry("ConsentGiven", 0, event_id="s-1"),
                           entry("ConsentExpired", 20, event_id="s-2"))])
    return ledger


def test_export_import_export_gives_the_same_records(varied: Ledger, tmp_path: Path) -> None:
    first = iso27560_records(varied, AT)
    statuses = {(r["pii_principal_id"], r["purpose"]): r["consent_status"] for r in first}
    assert statuses == {
        ("given", PURPOSE): "dpv:ConsentGiven", ("gone", PURPOSE): "dpv:ConsentWithdrawn",
        ("gone", "model-evaluation"): "dpv:ConsentGiven",
        ("operator", PURPOSE): "dpv:ConsentRevoked", ("lapsed", PURPOSE): "dpv:ConsentExpired",
        ("later", PURPOSE): "dpv:ConsentUnknown", ("stated", PURPOSE): "dpv:ConsentExpired"}
    fresh = Ledger(tmp_path / "fresh.duckdb")
    assert append(fresh, json.loads(json.dumps(first))) == varied.head().seq
    again = iso27560_records(fresh, AT)
    assert comparable(again) == comparable(first)
    # and the same through a file, as `consentgen consent import` reads it
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in first))
    other = Ledger(tmp_path / "other.duckdb")
    assert len(import_events(other, path).appended) == varied.head().seq
    assert comparable(iso27560_records(other, AT)) == comparable(first)
    assert len(import_events(other, path).already_present) == varied.head().seq  # idempotent


def test_a_consent_expired_entry_is_a_revoke_that_reads_back_as_expired(ledger: Ledger) -> None:
    append(ledger, [record("x", entry("ConsentGiven", 0), entry("ConsentExpired", 20))])
    grant, expiry = ledger.events(subject_id="x")
    assert (expiry.action, expiry.source, expiry.effective_at) == ("revoke", EXPIRY_SOURCE, day(20))
    assert event_status(expiry) is ConsentStatus.EXPIRED and event_status(grant) is ConsentStatus.GIVEN
    assert consent_ended_at(expiry) == day(20)
    assert ledger.state("x", PURPOSE, day(19)).status is ConsentStatus.GIVEN
    after = ledger.state("x", PURPOSE, day(21))
    assert after.status is ConsentStatus.EXPIRED and not after.granted
    assert ledger.eligible(PURPOSE, day(19)) == ["x"] and ledger.eligible(PURPOSE, day(21)) == []


def test_the_four_states_and_their_spellings_are_understood(ledger: Ledger) -> None:
    items = [record("a", {"consent_status": f"{DPV}ConsentGiven", "effective_at": day(0).isoformat()},
                    entry("ConsentWithdrawn", 1), consent_status="ConsentWithdrawn"),
             record("b", entry("ConsentGiven", 0), entry("ConsentRevoked", 2)),
             {"subject_id": "c", "purpose": PURPOSE, "action": "grant",
              "effective_at": day(0).isoformat()}]  # an event beside the records
    assert append(ledger, items) == 5
    assert [e.source for e in ledger.events(subject_id="b")] == ["", OPERATOR_WITHDRAWAL_SOURCE]
    assert ledger.state("b", PURPOSE, day(3)).status is ConsentStatus.REVOKED
    assert ledger.state("a", PURPOSE, day(3)).status is ConsentStatus.WITHDRAWN


@pytest.mark.parametrize(("status", "why"), [
    ("dpv:ConsentRefused", "never given needs no event"),
    ("dpv:RenewedConsentGiven", "as dpv:ConsentGiven"),
    ("dpv:ConsentRequested", "no decision"),
    ("dpv:ConsentDenied", "not a consent state this ledger records"),
    ("granted", "not a consent state"),
])
def test_any_other_entry_state_is_refused_with_the_reason(ledger: Ledger, status: str, why: str) -> None:
    bad = record("d", entry("ConsentGiven", 0), {"consent_status": status,
                                                 "effective_at": day(1).isoformat()})
    with pytest.raises(ImportProblemsError) as info:
        parse_objects([record("ok", entry("ConsentGiven", 0)), bad], "test")
    (problem,) = info.value.found
    assert (problem.at, problem.field) == (1, "events[1].consent_status")
    assert problem.reason.startswith(f"events[1]: consent_status {status!r} is no grant, withdrawal")
    assert why in problem.reason and "understood: dpv:ConsentGiven" in problem.reason
    assert ledger.head().seq == 0


def test_a_record_state_must_be_a_dpv_state(ledger: Ledger) -> None:
    good = record("e", entry("ConsentGiven", 0), consent_status="dpv:ConsentGiven")
    assert len(parse_objects([good, record("f", entry("ConsentGiven", 0))], "t")) == 2  # absent: fine
    with pytest.raises(ImportProblemsError) as info:
        parse_objects([good, {**good, "consent_status": "dpv:ConsentMaybe"}], "t")
    (problem,) = info.value.found
    assert (problem.at, problem.field) == (1, "consent_status")
    assert "'dpv:ConsentMaybe' is not a DPV consent state" in problem.reason
    assert "dpv:ConsentUnknown" in problem.reason


def test_a_source_that_would_read_back_as_another_state_is_refused() -> None:
    items = [record("g", entry("ConsentGiven", 0), entry("ConsentRevoked", 1, source="cmp-7")),
             record("h", entry("ConsentGiven", 0),
                    entry("ConsentWithdrawn", 1, source=EXPIRY_SOURCE)),
             record("i", entry("ConsentExpired", 1, source=EXPIRY_SOURCE))]  # its own: fine
    with pytest.raises(ImportProblemsError) as info:
        parse_objects(items, "t")
    assert [(p.at, p.field) for p in info.value.found] == [(0, "events[1].source"),
                                                          (1, "events[1].source")]
    assert "would read back as dpv:ConsentWithdrawn" in info.value.found[0].reason
    assert "marks a dpv:ConsentExpired entry" in info.value.found[1].reason


def test_record_level_problems_are_named_once() -> None:
    items = [record("\u202eevil", entry("ConsentGiven", 0), entry("ConsentGiven", 1)),
             {**record("j"), "purpose": "Not A Purpose", "events": [entry("ConsentGiven", 0)]},
             record("k"), "not an object",
             record("l", entry("ConsentGiven", 0, expires_at=day(-1).isoformat()),
                    {"consent_status": "dpv:ConsentGiven"})]
    with pytest.raises(ImportProblemsError) as info:
        parse_objects(items, "t")
    assert [(p.at, p.field) for p in info.value.found] == [
        (0, "pii_principal_id"), (1, "purpose"), (2, "events"), (3, ""),
        (4, "events[0]"), (4, "events[1].effective_at")]
    assert "bidirectional control" in info.value.found[0].reason
    assert "expires_at must be after effective_at" in info.value.found[4].reason
    with pytest.raises(ImportProblemsError) as empty:
        parse_objects([], "t")
    assert [(p.at, p.reason) for p in empty.value.found] == [(-1, "the body holds no events")]


def test_the_text_parser_needs_no_file() -> None:
    lines = (json.dumps({"subject_id": "m", "purpose": PURPOSE, "action": "grant",
                         "effective_at": day(0).isoformat()}) + "\n\n"
             + json.dumps(record("n", entry("ConsentGiven", 0), entry("ConsentExpired", 3))) + "\n")
    parsed = parse_text(lines, "jsonl", "body")
    assert [(p.at, p.part, p.event.subject_id, p.event.action) for p in parsed] == [
        (1, "", "m", "grant"), (3, "events[0]", "n", "grant"), (3, "events[1]", "n", "revoke")]
    csv = "subject_id,purpose,action,effective_at\no,synthetic-training,grant,2026-01-01T00:00:00Z\n"
    assert [p.event.subject_id for p in parse_text(csv, "csv", "body")] == ["o"]
    with pytest.raises(ImportProblemsError) as info:
        parse_text('{"subject_id": "p", "purpose": "synthetic-training", "action": "maybe", '
                   '"effective_at": "2026-01-01T00:00:00Z"}\n[1]\n', "jsonl", "body")
    assert [(p.at, p.field) for p in info.value.found] == [(1, "action"), (2, "")]
