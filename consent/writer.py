"""Appending to the ledger: the only code path that writes events.

A batch is deduplicated, checked against what is stored (same id + same content is an
idempotent retry, same id + other content a conflict), chained onto the head and inserted
in one transaction together with the new head in `heads`. Nothing here updates or deletes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from consent.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from consent.events import ConsentEvent, LedgerEvent, utc_now
from consent.rows import Appenders, Head, insert_events, read_head, stored_by_id
from consent.store import damaged, ensure_writable_schema, missing_parts, to_db_time
from consentgen.errors import EventConflictError, InvalidEventError, LedgerError

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
        (outcome,) = append_requests(self._con, self._path, [list(events)])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def append_requests(
    con: duckdb.DuckDBPyConnection, path: Path, requests: Sequence[Sequence[ConsentEvent]],
    head: Head | None = None, appenders: Appenders | None = None,
) -> list[AppendResult | LedgerError]:
    """Several callers' appends in one transaction (group commit), each all-or-nothing.

    A request that conflicts (an id stored, or claimed by an earlier request of the same
    group, with other content) or breaks a rule gets its error and appends nothing; the
    others are appended together, in request order, under one new head. Raises (and
    appends nothing at all) only when the transaction itself fails.

    `head` is the chain's head when the caller is the file's one writer and knows it: the
    group is then first tried optimistically, as if no id were stored (the events table's
    UNIQUE event id refuses the insert of one that is), which saves the lookup on the
    common path; a refused try is rolled back and the group redone with the lookup.
    """
    if head is not None:
        try:
            return _transaction(con, path, requests, head, appenders, optimistic=True)
        except duckdb.ConstraintException:
            pass  # an id is stored already: sort retries from conflicts properly
    return _transaction(con, path, requests, head, appenders, optimistic=False)


def _transaction(
    con: duckdb.DuckDBPyConnection, path: Path, requests: Sequence[Sequence[ConsentEvent]],
    head: Head | None, appenders: Appenders | None, *, optimistic: bool,
) -> list[AppendResult | LedgerError]:
    con.execute("BEGIN TRANSACTION")
    try:
        outcomes = _append_in_transaction(con, path, requests, head, optimistic, appenders)
        con.execute("COMMIT")
    except (duckdb.CatalogException, duckdb.BinderException):
        _rollback(con)
        _SCHEMA_SEEN.discard(path)  # a table dropped since this process looked
        missing = missing_parts(con)
        if missing:
            raise damaged(path, missing) from None
        raise
    except BaseException:
        _rollback(con)
        raise
    return outcomes


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back, unless the failure (a constraint caught at COMMIT) already did."""
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass


def _append_in_transaction(
    con: duckdb.DuckDBPyConnection, path: Path, requests: Sequence[Sequence[ConsentEvent]],
    known_head: Head | None, optimistic: bool = False, appenders: Appenders | None = None,
) -> list[AppendResult | LedgerError]:
    if path not in _SCHEMA_SEEN:
        ensure_writable_schema(con, path)
        _SCHEMA_SEEN.add(path)
    outcomes: list[AppendResult | LedgerError] = []
    deduped: list[list[ConsentEvent] | None] = []
    for events in requests:
        try:
            deduped.append(_dedupe_batch(list(events)))
        except EventConflictError as exc:
            deduped.append(None)
            outcomes.append(exc)
            continue
        outcomes.append(AppendResult())
    stored = {} if optimistic else stored_by_id(con, list(dict.fromkeys(
        e.event_id for events in deduped if events for e in events)))
    head = known_head if known_head is not None else read_head(con)
    now = utc_now()
    claimed: dict[str, ConsentEvent] = {}  # ids taken by an earlier request of this group
    fresh_by_request: list[list[ConsentEvent]] = []
    for i, events in enumerate(deduped):
        fresh: list[ConsentEvent] = []
        fresh_by_request.append(fresh)
        if events is None:
            continue
        problem = _classify(events, stored, claimed, now, outcomes[i], fresh)  # type: ignore[arg-type]
        if problem is not None:
            outcomes[i] = problem
            fresh.clear()
            continue
        for event in fresh:
            claimed[event.event_id] = event
    new_rows = _chain([e for fresh in fresh_by_request for e in fresh], head, now)
    if new_rows:
        head = Head(new_rows[-1].seq, new_rows[-1].hash)
        if appenders is not None:
            appenders.add(new_rows, head, to_db_time(now))
        else:
            insert_events(con, new_rows)
            con.execute("INSERT INTO heads VALUES (?, ?, ?)", [head.seq, head.hash, to_db_time(now)])
    by_id = {row.event_id: row for row in new_rows}
    for outcome, fresh in zip(outcomes, fresh_by_request, strict=True):
        if isinstance(outcome, AppendResult):
            outcome.appended = [by_id[e.event_id] for e in fresh]
            outcome.already_present = [by_id.get(e.event_id, e) for e in outcome.already_present]  # type: ignore[misc]
            outcome.head = head
    return outcomes


def _classify(
    events: list[ConsentEvent], stored: dict[str, LedgerEvent], claimed: dict[str, ConsentEvent],
    now: datetime, result: AppendResult, fresh: list[ConsentEvent],
) -> LedgerError | None:
    """Sort one request's events into retries of stored ones and new ones; or the error
    that refuses the whole request."""
    conflicts = []
    for event in events:
        existing = stored.get(event.event_id)
        earlier = claimed.get(event.event_id)
        if existing is not None:
            if event.matches(existing):
                result.already_present.append(existing)
            else:
                conflicts.append(event.event_id)
        elif earlier is not None:
            if earlier == event:
                result.already_present.append(earlier)  # type: ignore[arg-type] # swapped for its row
            else:
                conflicts.append(event.event_id)
        else:
            effective = event.effective_at or now
            if event.expires_at is not None and event.expires_at <= effective:
                return InvalidEventError(f"event {event.event_id}: expires_at is not after effective_at")
            fresh.append(event)
    if conflicts:
        return EventConflictError(
            f"event id(s) already in the ledger with other content: {', '.join(conflicts[:10])}"
            + (f" (and {len(conflicts) - 10} more)" if len(conflicts) > 10 else ""),
            conflicts,
        )
    return None


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
