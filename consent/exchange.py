"""Moving consent events in and out of the ledger.

Imports (CSV; JSON Lines of events or of ISO/IEC TS 27560 records) are all-or-nothing:
every line is checked first and every bad line is reported with its number and reason;
only a clean file is appended, in one transaction. Every imported line must say when its consent took effect (`effective_at`):
an import is a copy of another system's history, and the time of the import ("now") is
no fact of that history; an untimed grant re-read from a grown export would otherwise
land after a later revoke and grant consent again. A line without an `event_id` gets one
derived from its content alone (`derived_event_id`), so importing the same facts again,
from this file or a longer one, appends nothing: the ledger's idempotency by event id
applies to files from systems that send no ids. Exports are written to a temporary file
and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pydantic import ValidationError

from consent.events import ConsentEvent, describe_validation_error, utc_now
from consent.import_file import read_import_text
from consent.ledger import AppendResult, Ledger
from consent.state import ConsentStatus, event_status
from consentgen.errors import (
    ConfigError,
    EventConflictError,
    ImportRejectedError,
    InvalidEventError,
    LedgerError,
)
from consentgen.files import atomic_output

REQUIRED_COLUMNS = ("subject_id", "purpose", "action", "effective_at")
OPTIONAL_COLUMNS = ("event_id", "expires_at", "actor", "source")
UNTIMED = "effective_at is required in an import (the time the consent took effect in the source system)"
# Fields our own exports carry that the ledger assigns itself: accepted and ignored on
# import, so an export can be re-imported (idempotently) into another ledger.
LEDGER_ASSIGNED = ("seq", "recorded_at", "prev_hash", "hash")
ISO27560_SCHEMA = "https://w3id.org/dpv/schema/iso-27560#record"
DPV_CONTEXT = {"dpv": "https://w3id.org/dpv#"}
_DPV_ACTIONS = {
    ConsentStatus.GIVEN.dpv: "grant",
    ConsentStatus.WITHDRAWN.dpv: "revoke",
    ConsentStatus.REVOKED.dpv: "revoke",
}
"""The action of an ISO 27560 record's history entry, from the DPV state it put the record in."""
IMPORT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://consentgen.invalid/import-event-id/v1")
"""UUIDv5 namespace of derived event ids (fixed: changing it re-appends every old file)."""
_ID_FIELDS = ("subject_id", "purpose", "action", "effective_at", "expires_at", "actor", "source")


# --- import ------------------------------------------------------------------------------


def derived_event_id(event: ConsentEvent) -> str:
    """The event id of an imported line that carries none: a UUIDv5 over its canonical
    fields (subject, purpose, action, effective time, expiry, actor, source; times in UTC).

    The same fact imported twice, from any file, is then one event, and a second revoke
    after a re-grant is another event because its effective time differs. The id covers
    content only (no file digest, no line number), so an export that grew by a line
    re-imports as that one line.
    """
    if event.effective_at is None:
        raise InvalidEventError(UNTIMED)
    doc: dict[str, Any] = {}
    for name in _ID_FIELDS:
        value = getattr(event, name)
        doc[name] = value.isoformat() if isinstance(value, datetime) else value
    return str(uuid.uuid5(IMPORT_ID_NAMESPACE, json.dumps(doc, sort_keys=True, ensure_ascii=False)))


def read_events(path: str | Path) -> list[tuple[int, ConsentEvent]]:
    """Parse a CSV or JSON Lines file into (line number, event) pairs, or reject it whole."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ConfigError(f"{path}: unknown import format {suffix!r}; use .csv or .jsonl")
    text = read_import_text(path)
    if suffix == ".csv":
        parsed, problems = _parse_csv(text)
    else:
        parsed, problems = _parse_jsonl(text)
    parsed = [(line, event if given else event.model_copy(
                  update={"event_id": derived_event_id(event)}))
              for line, event, given in parsed]
    problems += _repeated_ids(parsed)
    if not parsed and not problems:
        problems.append((0, "the file holds no events"))
    if problems:
        raise ImportRejectedError(str(path), sorted(problems))
    return parsed


def import_events(ledger: Ledger, path: str | Path) -> AppendResult:
    """Append every event of a file in one transaction, or none of them."""
    return append_events(ledger, path, read_events(path))


def append_events(ledger: Ledger, path: str | Path,
                  parsed: list[tuple[int, ConsentEvent]]) -> AppendResult:
    """Append what `read_events` parsed from `path` (after the caller's own checks, such as
    declared purposes), in one transaction; a conflict names the file's lines."""
    try:
        return ledger.append_many([event for _, event in parsed])
    except EventConflictError as exc:
        conflicting = set(exc.event_ids)
        problems = [
            (line, f"event id {event.event_id!r} is already in the ledger with other content")
            for line, event in parsed
            if event.event_id in conflicting
        ]
        raise ImportRejectedError(str(path), problems) from None


_Parsed = tuple[int, ConsentEvent, bool]
"""(line number, event, whether the line gave its own event id)."""


def _validate(line: int, record: dict[str, Any]) -> tuple[ConsentEvent | None, tuple[int, str] | None]:
    cleaned = {
        k: v for k, v in record.items() if v not in (None, "") and k not in LEDGER_ASSIGNED
    }
    reasons = [] if "effective_at" in cleaned else [UNTIMED]
    try:
        event = ConsentEvent.model_validate(cleaned)
    except ValidationError as exc:
        reasons.append(describe_validation_error(exc))
    if reasons:
        return None, (line, "; ".join(reasons))
    return event, None


def _gives_id(record: dict[str, Any]) -> bool:
    return record.get("event_id") not in (None, "")


def _parse_csv(text: str) -> tuple[list[_Parsed], list[tuple[int, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return [], []
    except csv.Error as exc:
        return [], [(1, f"unreadable CSV header: {exc}")]
    header = [h.strip() for h in header]
    problems: list[tuple[int, str]] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in header and c != "effective_at"]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS + LEDGER_ASSIGNED]
    if "effective_at" not in header:
        problems.append((1, f"{UNTIMED}: the header has no effective_at column"))
    if missing:
        problems.append((1, f"missing column(s): {', '.join(missing)}"))
    if unknown:
        problems.append((1, f"unknown column(s): {', '.join(unknown)}"))
    if len(set(header)) != len(header):
        problems.append((1, "a column name appears twice"))
    if problems:
        return [], problems
    parsed = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append((reader.line_num, f"unreadable CSV: {exc}"))
            break
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append((line, f"expected {len(header)} fields, found {len(row)}"))
            continue
        record = dict(zip(header, row, strict=True))
        event, problem = _validate(line, record)
        if problem:
            problems.append(problem)
        else:
            parsed.append((line, event, _gives_id(record)))
    return parsed, problems


def _parse_jsonl(text: str) -> tuple[list[_Parsed], list[tuple[int, str]]]:
    parsed, problems = [], []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw, parse_float=_refuse_float)
        except (json.JSONDecodeError, ValueError) as exc:
            problems.append((line, f"not valid JSON: {exc}"))
            continue
        if not isinstance(record, dict):
            problems.append((line, "each line must be a JSON object"))
            continue
        if record.get("schema_version") == ISO27560_SCHEMA:
            events, trouble = _record_events(line, record)
            parsed += events
            problems += trouble
            continue
        event, problem = _validate(line, record)
        if problem:
            problems.append(problem)
        else:
            parsed.append((line, event, _gives_id(record)))
    return parsed, problems


def _record_events(line: int, record: dict[str, Any]) -> tuple[list[_Parsed], list[tuple[int, str]]]:
    """The events of one ISO/IEC TS 27560 record (the form `iso27560_records` writes): each
    history entry is a grant (dpv:ConsentGiven) or a revoke (dpv:ConsentWithdrawn,
    dpv:ConsentRevoked) of the record's principal and purpose, and, like any imported
    line, must say when it took effect. Problems name the line and the entry."""
    history = record.get("events")
    if not isinstance(history, list) or not history:
        return [], [(line, "an ISO/IEC TS 27560 record without events (its history of grants "
                           "and revokes is what is imported)")]
    parsed: list[_Parsed] = []
    problems: list[tuple[int, str]] = []
    for i, entry in enumerate(history):
        status = entry.get("consent_status") if isinstance(entry, dict) else None
        if status not in _DPV_ACTIONS:
            problems.append((line, f"events[{i}]: consent_status {status!r} is no grant or revoke "
                                   f"(use {', '.join(_DPV_ACTIONS)})"))
            continue
        fields = {k: entry.get(k) for k in ("event_id", "effective_at", "expires_at", "actor", "source")}
        fields |= {"subject_id": record.get("pii_principal_id"), "purpose": record.get("purpose"),
                   "action": _DPV_ACTIONS[status]}
        event, problem = _validate(line, fields)
        if problem:
            problems.append((line, f"events[{i}]: {problem[1]}"))
        else:
            parsed.append((line, event, _gives_id(fields)))
    return parsed, problems


def _refuse_float(text: str) -> float:
    raise ValueError(f"floating-point number {text} is not allowed in consent events")


def _repeated_ids(parsed: list[tuple[int, ConsentEvent]]) -> list[tuple[int, str]]:
    first: dict[str, tuple[int, ConsentEvent]] = {}
    problems = []
    for line, event in parsed:
        seen = first.setdefault(event.event_id, (line, event))
        if seen[1] != event:
            problems.append(
                (line, f"event id {event.event_id!r} repeats line {seen[0]} with other content")
            )
    return problems


# --- export ------------------------------------------------------------------------------


def export_jsonl(ledger: Ledger, path: str | Path) -> int:
    events = ledger.events()
    with atomic_output(path) as fh:
        for event in events:
            fh.write(json.dumps(event.public_dict(), ensure_ascii=False, sort_keys=True) + "\n")
    return len(events)


def export_parquet(ledger: Ledger, path: str | Path) -> int:
    table = ledger.to_arrow()
    with atomic_output(path, "wb") as fh:
        pq.write_table(table, fh)
    return table.num_rows


def iso27560_records(ledger: Ledger, at: datetime | None = None) -> list[dict[str, Any]]:
    """One ISO/IEC TS 27560-style consent record per (subject, purpose), with DPV states.

    The record's status is the DPV consent state at `at` (default now); its history lists
    every event with the DPV state it put the record in.
    """
    head = ledger.head()
    when = at or utc_now()
    by_key: dict[tuple[str, str], list] = {}
    for event in ledger.events():
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


EXPORTERS: dict[str, Callable[[Ledger, Path], int]] = {
    "jsonl": export_jsonl,
    "parquet": export_parquet,
    "iso27560": export_iso27560,
}


def export(ledger: Ledger, fmt: str, path: str | Path) -> int:
    try:
        exporter = EXPORTERS[fmt]
    except KeyError:
        raise LedgerError(f"unknown export format {fmt!r}; use {', '.join(EXPORTERS)}") from None
    return exporter(ledger, Path(path))
