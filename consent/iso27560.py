"""ISO/IEC TS 27560 consent records with W3C DPV states: our export, and reading them back.

A record is one (subject, purpose): its state at a time and its history, each history
entry the DPV state one event put the record in. Four states are events to this ledger:
dpv:ConsentGiven (a grant), dpv:ConsentWithdrawn (a revoke by the subject),
dpv:ConsentRevoked (a revoke by someone else: source `OPERATOR_WITHDRAWAL_SOURCE`) and
dpv:ConsentExpired (consent ran out at the entry's effective time: a revoke with source
`EXPIRY_SOURCE`). The source is what tells the last three apart (`consent.state`), so an
entry's state decides it, and an entry whose own source would make it read back as
another state is refused: our export re-imports into the same records, exactly. Any other
state is refused with the reason; a record's own `consent_status` (derived, not imported)
must still be a DPV state.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from consent.events import PURPOSE_PATTERN, normalise_subject_id, utc_now
from consent.ledger import Ledger
from consent.state import EXPIRY_SOURCE, OPERATOR_WITHDRAWAL_SOURCE, ConsentStatus, event_status
from consentgen.files import atomic_output

ISO27560_SCHEMA = "https://w3id.org/dpv/schema/iso-27560#record"
DPV = "https://w3id.org/dpv#"
DPV_CONTEXT = {"dpv": DPV}
ACTIONS = {
    ConsentStatus.GIVEN: "grant",
    ConsentStatus.WITHDRAWN: "revoke",
    ConsentStatus.REVOKED: "revoke",
    ConsentStatus.EXPIRED: "revoke",
}
"""The action of a history entry, from the DPV state it put the record in."""
MARKS = {ConsentStatus.REVOKED: OPERATOR_WITHDRAWAL_SOURCE, ConsentStatus.EXPIRED: EXPIRY_SOURCE}
"""The source that makes a revoke read back as that state."""
UNDERSTOOD = ", ".join(s.dpv for s in ACTIONS)
_NOT_EVENTS = {
    "ConsentUnknown": "it records no decision",
    "ConsentRequested": "a request is no decision",
    "ConsentRequestDeferred": "a deferred request is no decision",
    "ConsentRefused": "consent that was never given needs no event (no grant on record "
                      "means no consent): leave the entry out",
    "ConsentInvalidated": "invalidated consent has no one meaning here: record it as "
                          "dpv:ConsentRevoked (ended by someone other than the subject)",
    "RenewedConsentGiven": "record a renewal as dpv:ConsentGiven with its own effective_at",
}


class Entry(NamedTuple):
    """One history entry read from a record: where it is ("events[2]"; "" for the record
    itself), the event's fields, or the (field, reason) that refuses it."""

    part: str
    fields: dict[str, Any] | None
    problem: tuple[str, str] | None = None


def where(part: str, field: str) -> str:
    """`events[2]` and `source` -> `events[2].source`."""
    return f"{part}.{field}" if part and field else part or field


def is_record(item: dict[str, Any]) -> bool:
    """Whether a JSON object is meant as a consent record (not a ledger event)."""
    return (item.get("schema_version") == ISO27560_SCHEMA or "pii_principal_id" in item
            or item.get("@type") in ("dpv:ConsentRecord", f"{DPV}ConsentRecord"))


def dpv_state(value: Any) -> ConsentStatus | None:
    """A DPV consent state this ledger knows, written `dpv:X`, as the full IRI, or bare."""
    if not isinstance(value, str):
        return None
    name = value.removeprefix("dpv:").removeprefix(DPV)
    try:
        return ConsentStatus(name)
    except ValueError:
        return None


def record_events(record: dict[str, Any]) -> list[Entry]:
    """The entries of one record (see the module docstring), each with its fields or its
    problem; problems of the record itself have part "". Nothing here raises."""
    out: list[Entry] = []
    status = record.get("consent_status")
    if status is not None and dpv_state(status) is None:
        out.append(Entry("", None, ("consent_status", f"consent_status {status!r} is not a DPV "
                                    "consent state (the record's state is one of "
                                    f"{', '.join(s.dpv for s in ConsentStatus)})")))
    subject, purpose = record.get("pii_principal_id"), record.get("purpose")
    try:
        subject = normalise_subject_id(subject, "pii_principal_id")
    except ValueError as exc:
        out.append(Entry("", None, ("pii_principal_id", str(exc))))
    if not isinstance(purpose, str) or not PURPOSE_PATTERN.match(purpose):
        out.append(Entry("", None, ("purpose", f"purpose {purpose!r} must be lower-case letters, "
                                    "digits and . _ : - (e.g. synthetic-training)")))
    history = record.get("events")
    if not isinstance(history, list) or not history:
        out.append(Entry("", None, ("events", "an ISO/IEC TS 27560 record without events (its "
                                    "history of grants and revokes is what is imported)")))
        return out
    if out and any(e.problem[0] in ("pii_principal_id", "purpose") for e in out if e.problem):
        return out  # every entry would repeat it
    for i, item in enumerate(history):
        out.append(_entry(f"events[{i}]", item, subject, purpose))
    return out


def _entry(part: str, item: Any, subject: str, purpose: str) -> Entry:
    if not isinstance(item, dict):
        return Entry(part, None, ("", f"{part}: a history entry must be a JSON object"))
    raw = item.get("consent_status")
    state = dpv_state(raw)
    if state not in ACTIONS:
        name = raw.removeprefix("dpv:").removeprefix(DPV) if isinstance(raw, str) else ""
        why = _NOT_EVENTS.get(name, "not a consent state this ledger records")
        return Entry(part, None, ("consent_status", f"{part}: consent_status {raw!r} is no grant, "
                                  f"withdrawal, revocation or expiry: {why} (understood: {UNDERSTOOD})"))
    source = item.get("source") or ""
    mark = MARKS.get(state)
    if mark is not None and source not in ("", mark):
        return Entry(part, None, ("source", f"{part}: a {state.dpv} entry is recorded with source "
                                  f"{mark!r} (what marks it as {state.value}); source {source!r} "
                                  "would read back as dpv:ConsentWithdrawn: leave source out"))
    marked = next((s for s, m in MARKS.items() if m == source), None)
    if state is ConsentStatus.WITHDRAWN and marked is not None:
        return Entry(part, None, ("source", f"{part}: source {source!r} marks a {marked.dpv} "
                                  "entry, not the subject's own withdrawal: give the entry that "
                                  "state, or another source"))
    fields = {k: item.get(k) for k in ("event_id", "effective_at", "expires_at", "actor")}
    fields |= {"subject_id": subject, "purpose": purpose, "action": ACTIONS[state],
               "source": mark or source}
    return Entry(part, fields)


# --- export ------------------------------------------------------------------------------


def iso27560_records(ledger: Ledger, at: datetime | None = None) -> list[dict[str, Any]]:
    """One ISO/IEC TS 27560-style consent record per (subject, purpose), with DPV states.

    The record's status is the DPV consent state at `at` (default now); its history lists
    every event with the DPV state it put the record in.
    """
    head = ledger.head()
    when = at or utc_now()
    by_key: dict[tuple[str, str], list] = {}
    for event in ledger.events():
        if event.seq > head.seq:  # appended since the head was read: as of one head
            break
        by_key.setdefault((event.subject_id, event.purpose), []).append(event)
    states = {}
    for purpose in sorted({p for _, p in by_key}):
        for state in ledger.states(purpose, when, as_of_seq=head.seq):
            states[(state.subject_id, purpose)] = state
    records = []
    for (subject, purpose), events in sorted(by_key.items()):
        state = states.get((subject, purpose))
        status = state.status if state else ConsentStatus.UNKNOWN
        deciding = state.deciding_event if state else None
        records.append(
            {
                "@context": DPV_CONTEXT,
                "@type": "dpv:ConsentRecord",
                "schema_version": ISO27560_SCHEMA,
                "record_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"consentgen:{subject}:{purpose}")),
                "pii_principal_id": subject,
                "purpose": purpose,
                "consent_status": status.dpv,
                "status_at": when.isoformat().replace("+00:00", "Z"),
                "consent_expiry": _iso(deciding.expires_at) if deciding else None,
                "deciding_event_id": deciding.event_id if deciding else None,
                "ledger_head": {"seq": head.seq, "hash": head.hash},
                "events": [
                    {
                        "event_id": e.event_id,
                        "seq": e.seq,
                        "consent_status": event_status(e).dpv,
                        "effective_at": _iso(e.effective_at),
                        "expires_at": _iso(e.expires_at),
                        "recorded_at": _iso(e.recorded_at),
                        "actor": e.actor,
                        "source": e.source,
                        "hash": e.hash,
                    }
                    for e in events
                ],
            }
        )
    return records


def export_iso27560(ledger: Ledger, path: str | Path, at: datetime | None = None) -> int:
    records = iso27560_records(ledger, at)
    with atomic_output(path) as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    return len(records)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
