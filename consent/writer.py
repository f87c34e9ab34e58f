"""Appending to the ledger: the only code path that writes events.

A batch is deduplicated, checked against what is stored (same id + same content is an
idempotent retry, same id + other content a conflict), chained onto the head and inserted
in one transaction together with the new head in `heads`. Nothing here updates or deletes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from consent.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from consent.events import ConsentEvent, LedgerEvent, utc_now
from consent.rows import Head, insert_events, read_head, stored_by_id
from consent.store import damaged, ensure_writable_schema, missing_parts, to_db_time
from consentgen.errors import EventConflictError, InvalidEventError

# Paths whose tables this process has already seen: saves a catalog query per append.
_SCHEMA_SEEN: set[Path] = set()


@dataclass
class AppendResult:
    appended: list[LedgerEvent] = field(default_factory=list)
    already_present: list[LedgerEvent] = field(default_factory=list)
    head: Head = Head(0, GENESIS_HASH)

    @property
    def event(self) -> LedgerEvent:
        """The one event of a one-event append, whether new or already stored."""
        return (self.appended or self.already_present)[0]


class LedgerWriter:
    """Appends through one kept-open connection (see `Ledger.writer`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self._con = con
        self._path = path

    def append(self, event: ConsentEvent) -> LedgerEvent:
        return self.append_many([event]).event

    def append_many(self, events: Iterable[ConsentEvent]) -> AppendResult:
        """One transaction: all of `events`, or none (see `Ledger.append_many`)."""
        incoming = _dedupe_batch(list(events))
        self._con.execute("BEGIN TRANSACTION")
        try:
            result = _append_in_transaction(self._con, self._path, incoming)
            self._con.execute("COMMIT")
        except (duckdb.CatalogException, duckdb.BinderException):
            self._con.execute("ROLLBACK")
            _SCHEMA_SEEN.discard(self._path)  # a table dropped since this process looked
            missing = missing_parts(self._con)
            if missing:
                raise damaged(self._path, missing) from None
            raise
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        return result


def _append_in_transaction(
    con: duckdb.DuckDBPyConnection, path: Path, incoming: list[ConsentEvent]
) -> AppendResult:
    if path not in _SCHEMA_SEEN:
        ensure_writable_schema(con, path)
        _SCHEMA_SEEN.add(path)
    stored = stored_by_id(con, [e.event_id for e in incoming])
    result = AppendResult()
    conflicts = []
    fresh: list[ConsentEvent] = []
    for event in incoming:
        existing = stored.get(event.event_id)
        if existing is None:
            fresh.append(event)
        elif event.matches(existing):
            result.already_present.append(existing)
        else:
            conflicts.append(event.event_id)
    if conflicts:
        raise EventConflictError(
            f"event id(s) already in the ledger with other content: {', '.join(conflicts[:10])}"
            + (f" (and {len(conflicts) - 10} more)" if len(conflicts) > 10 else ""),
            conflicts,
        )
    head = read_head(con)
    if fresh:
        now = utc_now()
        rows = _chain(fresh, head, now)
        insert_events(con, rows)
        head = Head(rows[-1].seq, rows[-1].hash)
        con.execute("INSERT INTO heads VALUES (?, ?, ?)", [head.seq, head.hash, to_db_time(now)])
        result.appended = rows
    result.head = head
    return result


def _chain(events: list[ConsentEvent], head: Head, now: datetime) -> list[LedgerEvent]:
    """Give each new event its sequence number, recorded time and chained hash."""
    rows = []
    seq, prev = head
    for event in events:
        seq += 1
        fields = {
            "seq": seq,
            "event_id": event.event_id,
            "subject_id": event.subject_id,
            "purpose": event.purpose,
            "action": event.action,
            "effective_at": event.effective_at or now,
            "expires_at": event.expires_at,
            "recorded_at": now,
            "actor": event.actor,
            "source": event.source,
        }
        if fields["expires_at"] is not None and fields["expires_at"] <= fields["effective_at"]:
            raise InvalidEventError(f"event {event.event_id}: expires_at is not after effective_at")
        digest = chain_hash(prev, canonical_bytes(fields))
        rows.append(LedgerEvent.model_construct(**fields, prev_hash=prev, hash=digest))
        prev = digest
    return rows


def _dedupe_batch(events: list[ConsentEvent]) -> list[ConsentEvent]:
    """Collapse repeats of one event id inside a batch; refuse repeats with other content."""
    seen: dict[str, ConsentEvent] = {}
    out = []
    conflicts = []
    for event in events:
        first = seen.get(event.event_id)
        if first is None:
            seen[event.event_id] = event
            out.append(event)
        elif first != event:
            conflicts.append(event.event_id)
    if conflicts:
        raise EventConflictError(
            f"event id(s) repeated with other content in one batch: {', '.join(conflicts[:10])}",
            conflicts,
        )
    return out
