"""Moving consent events in and out of the ledger.

Imports (CSV; JSON Lines of events or of ISO/IEC TS 27560 records; a JSON list of either,
through the service) are all-or-nothing: every line or item is checked first and every
problem is reported with its line (or index), the field to fix and the reason; only a
clean import is appended, in one transaction. Every imported event must say when its
consent took effect (`effective_at`): an import is a copy of another system's history,
and the time of the import ("now") is no fact of that history; an untimed grant re-read
from a grown export would otherwise land after a later revoke and grant consent again. An
event without an `event_id` gets one derived from its content alone (`derived_event_id`),
so importing the same facts again, from this file or a longer one, appends nothing: the
ledger's idempotency by event id applies to files from systems that send no ids. The
parsers work on text and on parsed objects, so the CLI's files and the service's request
bodies are read by the same code. Exports are written to a temporary file and renamed, so
a reader never sees half a file; ISO 27560 records live in `consent.iso27560`.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow.parquet as pq
from pydantic import ValidationError

from consent.events import ConsentEvent, LedgerEvent, describe_validation_error
from consent.import_file import read_import_text
from consent.iso27560 import (
    ISO27560_SCHEMA,
    export_iso27560,
    is_record,
    iso27560_records,
    record_events,
    where,
)
from consent.ledger import AppendResult, Ledger
from consentgen.errors import (
    ConfigError,
    EventConflictError,
    ImportRejectedError,
    InvalidEventError,
    LedgerError,
)
from consentgen.files import atomic_output

__all__ = ["ISO27560_SCHEMA", "ImportProblemsError", "Parsed", "Problem", "export",
           "import_events", "iso27560_records", "parse_objects", "parse_text", "read_events"]

REQUIRED_COLUMNS = ("subject_id", "purpose", "action", "effective_at")
OPTIONAL_COLUMNS = ("event_id", "expires_at", "actor", "source")
UNTIMED = "effective_at is required in an import (the time the consent took effect in the source system)"
# Fields our own exports carry that the ledger assigns itself: accepted and ignored on
# import, so an export can be re-imported (idempotently) into another ledger.
LEDGER_ASSIGNED = ("seq", "recorded_at", "prev_hash", "hash")
IMPORT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://consentgen.invalid/import-event-id/v1")
"""UUIDv5 namespace of derived event ids (fixed: changing it re-appends every old file)."""
_ID_FIELDS = ("subject_id", "purpose", "action", "effective_at", "expires_at", "actor", "source")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class Problem(NamedTuple):
    """One thing wrong with an import: where (a line number from 1, or an index into a JSON
    list from 0; 0 or -1 for the import as a whole), the field to fix inside it ("" for
    the whole line) and why, in one line."""

    at: int
    field: str
    reason: str


class Parsed(NamedTuple):
    """An event read from an import: its line (or index), where in that line it came
    from ("" for an event line, "events[2]" for a record's history entry), the event."""

    at: int
    part: str
    event: ConsentEvent


class ImportProblemsError(ImportRejectedError):
    """An import refused whole; `found` keeps each problem's field (the API names it)."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__(source, [(p.at, p.reason) for p in problems])
        self.found = problems


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
    if suffix not in FORMATS:
        raise ConfigError(f"{path}: unknown import format {suffix!r}; use .csv or .jsonl")
    parsed = parse_text(read_import_text(path), FORMATS[suffix], str(path))
    return [(p.at, p.event) for p in parsed]


def parse_text(text: str, fmt: str, source: str, *, holder: str = "the file") -> list[Parsed]:
    """The events of an import's text, `fmt` "csv" or "jsonl" (lines of events or of ISO
    27560 records); `ImportProblemsError` naming every bad line otherwise."""
    if fmt == "csv":
        found, problems = _parse_csv(text)
    elif fmt == "jsonl":
        found, problems = [], []
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw, parse_float=_refuse_float)
            except (json.JSONDecodeError, ValueError, RecursionError) as exc:
                problems.append(Problem(line, "", f"not valid JSON: {exc}"))
                continue
            _parse_object(line, item, found, problems, "each line must be a JSON object")
    else:
        raise ConfigError(f"unknown import format {fmt!r}; use csv or jsonl")
    return _finish(found, problems, source, holder, whole=0)


def parse_objects(items: list[Any], source: str, *, holder: str = "the body") -> list[Parsed]:
    """The events of a parsed JSON list (ISO 27560 records or events, as our exports write
    them), each problem named by its index; `ImportProblemsError` otherwise."""
    found: list[_Found] = []
    problems: list[Problem] = []
    for i, item in enumerate(items):
        _parse_object(i, item, found, problems, "each item must be a JSON object")
    return _finish(found, problems, source, holder, whole=-1)


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
        found = [Parsed(line, "", event) for line, event in parsed]
        raise ImportProblemsError(str(path), conflicts(found, exc.event_ids)) from None


def conflicts(parsed: list[Parsed], event_ids: list[str]) -> list[Problem]:
    """The problems of an import whose event ids the ledger holds with other content."""
    taken = set(event_ids)
    return [Problem(p.at, where(p.part, "event_id"), f"{p.part + ': ' if p.part else ''}event id "
                    f"{p.event.event_id!r} is already in the ledger with other content")
            for p in parsed if p.event.event_id in taken]


class _Found(NamedTuple):
    at: int
    part: str
    event: ConsentEvent
    given: bool  # whether the line gave its own event id


def _finish(found: list[_Found], problems: list[Problem], source: str, holder: str, *,
            whole: int) -> list[Parsed]:
    """Derive the missing ids, check repeated ones, and refuse the import if anything is
    wrong; `whole` is the `at` of a problem of the import as a whole (line 0 of a file,
    index -1 of a list)."""
    parsed = [Parsed(f.at, f.part, f.event if f.given else f.event.model_copy(
                  update={"event_id": derived_event_id(f.event)})) for f in found]
    problems += _repeated_ids(parsed, "item [{}]" if whole < 0 else "line {}")
    if not parsed and not problems:
        problems.append(Problem(whole, "", f"{holder} holds no events"))
    if problems:
        raise ImportProblemsError(source, sorted(problems, key=lambda p: p.at))
    return parsed


def _parse_object(at: int, item: Any, found: list[_Found], problems: list[Problem],
                  not_object: str) -> None:
    if not isinstance(item, dict):
        problems.append(Problem(at, "", not_object))
    elif is_record(item):
        for part, fields, trouble in record_events(item):
            if trouble is not None:
                problems.append(Problem(at, where(part, trouble[0]), trouble[1]))
                continue
            _add(at, part, fields, found, problems)
    else:
        _add(at, "", item, found, problems)


def _add(at: int, part: str, record: dict[str, Any], found: list[_Found],
         problems: list[Problem]) -> None:
    event, problem = _validate(at, record, part)
    if problem is not None:
        problems.append(problem)
    else:
        found.append(_Found(at, part, event, record.get("event_id") not in (None, "")))


def _validate(at: int, record: dict[str, Any], part: str = "") -> tuple[ConsentEvent | None,
                                                                           Problem | None]:
    cleaned = {
        k: v for k, v in record.items() if v not in (None, "") and k not in LEDGER_ASSIGNED
    }
    reasons, field = ([], None) if "effective_at" in cleaned else ([UNTIMED], "effective_at")
    try:
        event = ConsentEvent.model_validate(cleaned)
    except ValidationError as exc:
        reasons.append(describe_validation_error(exc))
        loc = exc.errors()[0].get("loc") or ()
        field = field or ".".join(str(p) for p in loc)
    if reasons:
        return None, Problem(at, where(part, field or ""),
                             (f"{part}: " if part else "") + "; ".join(reasons))
    return event, None


def _parse_csv(text: str) -> tuple[list[_Found], list[Problem]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return [], []
    except csv.Error as exc:
        return [], [Problem(1, "", f"unreadable CSV header: {exc}")]
    header = [h.strip() for h in header]
    problems: list[Problem] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in header and c != "effective_at"]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS + LEDGER_ASSIGNED]
    if "effective_at" not in header:
        problems.append(Problem(1, "effective_at", f"{UNTIMED}: the header has no effective_at column"))
    if missing:
        problems.append(Problem(1, missing[0], f"missing column(s): {', '.join(missing)}"))
    if unknown:
        problems.append(Problem(1, unknown[0], f"unknown column(s): {', '.join(unknown)}"))
    if len(set(header)) != len(header):
        problems.append(Problem(1, "", "a column name appears twice"))
    if problems:
        return [], problems
    found: list[_Found] = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(reader.line_num, "", f"unreadable CSV: {exc}"))
            break
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(Problem(line, "", f"expected {len(header)} fields, found {len(row)}"))
            continue
        _add(line, "", dict(zip(header, row, strict=True)), found, problems)
    return found, problems


def _refuse_float(text: str) -> float:
    raise ValueError(f"floating-point number {text} is not allowed in consent events")


def _repeated_ids(parsed: list[Parsed], unit: str) -> list[Problem]:
    first: dict[str, Parsed] = {}
    problems = []
    for p in parsed:
        seen = first.setdefault(p.event.event_id, p)
        if seen.event != p.event:
            problems.append(Problem(p.at, where(p.part, "event_id"),
                                    f"{p.part + ': ' if p.part else ''}event id "
                                    f"{p.event.event_id!r} repeats {unit.format(seen.at)} with other content"))
    return problems


# --- export ------------------------------------------------------------------------------


def event_line(event: LedgerEvent) -> str:
    """One event as a JSON Lines line of our export (without its newline)."""
    return json.dumps(event.public_dict(), ensure_ascii=False, sort_keys=True)


def export_jsonl(ledger: Ledger, path: str | Path) -> int:
    events = ledger.events()
    with atomic_output(path) as fh:
        for event in events:
            fh.write(event_line(event) + "\n")
    return len(events)


def export_parquet(ledger: Ledger, path: str | Path) -> int:
    table = ledger.to_arrow()
    with atomic_output(path, "wb") as fh:
        pq.write_table(table, fh)
    return table.num_rows


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
