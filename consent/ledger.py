"""The consent ledger: an append-only, hash-chained DuckDB file.

Writers hold the file only for one short transaction (DuckDB allows one writing process
per file) and wait their turn with backoff; readers open it read-only and briefly. Every
event is validated at the boundary, chained with `consent.canonical`, and never updated
or deleted by any code path here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from consent.canonical import GENESIS_HASH, HASH_SQL, canonical_bytes, chain_hash
from consent.events import Action, ConsentEvent, LedgerEvent, to_utc, utc_now
from consent.state import ConsentState, status_of
from consent.store import (
    EVENT_COLUMNS,
    connect,
    create_schema,
    from_db_time,
    has_schema,
    to_db_time,
)
from consentgen.duck import DEFAULT_MAX_WAIT_S, fetch_one
from consentgen.errors import EventConflictError, InvalidEventError, LedgerIntegrityError
from consentgen.home import ledger_path


class Head(NamedTuple):
    """The chain head: the last sequence number and its hash (0 and genesis when empty)."""

    seq: int
    hash: str


@dataclass
class AppendResult:
    appended: list[LedgerEvent] = field(default_factory=list)
    already_present: list[LedgerEvent] = field(default_factory=list)
    head: Head = Head(0, GENESIS_HASH)


_SELECT_EVENTS = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"

# The deciding event per subject for one purpose at a time, as of a sequence number.
_DECIDING_SQL = f"""
    SELECT {', '.join(EVENT_COLUMNS)}
    FROM events
    WHERE purpose = $purpose AND effective_at <= $at AND seq <= $as_of {{subject_filter}}
    QUALIFY row_number() OVER (PARTITION BY subject_id ORDER BY effective_at DESC, seq DESC) = 1
"""

# The deciding event is taken whole as a struct: arg_max skips NULL arguments, so taking
# `expires_at` on its own would fall back to an older event's expiry.
_ELIGIBLE_SQL = """
    SELECT subject_id
    FROM (
        SELECT subject_id,
               arg_max({'action': action, 'expires_at': expires_at}, (effective_at, seq)) AS d
        FROM events
        WHERE purpose = $purpose AND effective_at <= $at AND seq <= $as_of
        GROUP BY subject_id
    )
    WHERE d.action = 'grant' AND (d.expires_at IS NULL OR d.expires_at > $at)
    ORDER BY subject_id
"""

_VERIFY_SQL = f"""
    WITH chain AS (
        SELECT seq, prev_hash, hash, {HASH_SQL} AS recomputed,
               lag(seq) OVER (ORDER BY seq) AS prior_seq,
               lag(hash) OVER (ORDER BY seq) AS prior_hash
        FROM events
    )
    SELECT seq, prior_seq, prior_hash, prev_hash, hash, recomputed
    FROM chain
    WHERE (prior_seq IS NULL AND (seq <> 1 OR prev_hash <> $genesis))
       OR (prior_seq IS NOT NULL AND (seq <> prior_seq + 1 OR prev_hash <> prior_hash))
       OR recomputed <> hash
    ORDER BY seq
    LIMIT 1
"""

_MAX_SEQ = 2**62


def _row_to_event(row: Sequence[Any]) -> LedgerEvent:
    data = dict(zip(EVENT_COLUMNS, row, strict=True))
    for key in ("effective_at", "expires_at", "recorded_at"):
        data[key] = from_db_time(data[key])
    data["action"] = Action(data["action"])
    return LedgerEvent.model_construct(**data)


def _as_of(at: datetime | None) -> datetime:
    return utc_now() if at is None else to_utc(at, "at")


class LedgerWriter:
    """Appends through one kept-open connection (see `Ledger.writer`)."""

    def __init__(self, ledger: Ledger, con: duckdb.DuckDBPyConnection) -> None:
        self._ledger = ledger
        self._con = con

    def append(self, event: ConsentEvent) -> LedgerEvent:
        result = self.append_many([event])
        return (result.appended or result.already_present)[0]

    def append_many(self, events: Iterable[ConsentEvent]) -> AppendResult:
        """One transaction: all of `events`, or none (see `Ledger.append_many`)."""
        incoming = _dedupe_batch(list(events))
        self._con.execute("BEGIN TRANSACTION")
        try:
            result = self._ledger._append_in_transaction(self._con, incoming)
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        return result


class Ledger:
    """One consent ledger file. Cheap to construct; every call opens and closes the file."""

    def __init__(self, path: str | Path, *, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        self.path = Path(path).resolve()
        self.max_wait_s = max_wait_s

    @classmethod
    def at_home(cls, home: str | Path | None = None, **kwargs: Any) -> Ledger:
        return cls(ledger_path(home), **kwargs)

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    # --- writing -------------------------------------------------------------------------

    def init(self) -> Head:
        """Create the ledger file and its tables if missing; return the head."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with connect(self.path, read_only=False, max_wait_s=self.max_wait_s) as con:
            create_schema(con)
            return self._head(con)

    def append(self, event: ConsentEvent) -> LedgerEvent:
        """Append one event; the same event id with the same content returns the stored one."""
        result = self.append_many([event])
        return (result.appended or result.already_present)[0]

    def grant(self, subject_id: str, purpose: str, **fields: Any) -> LedgerEvent:
        return self.append(ConsentEvent.parse({"subject_id": subject_id, "purpose": purpose,
                                               "action": "grant", **fields}))

    def revoke(self, subject_id: str, purpose: str, **fields: Any) -> LedgerEvent:
        return self.append(ConsentEvent.parse({"subject_id": subject_id, "purpose": purpose,
                                               "action": "revoke", **fields}))

    def append_many(self, events: Iterable[ConsentEvent]) -> AppendResult:
        """Append events in one transaction: all of them, or none.

        Events whose id is already stored with the same content are skipped (idempotent
        retries); an id stored with other content raises `EventConflictError` naming every
        such id, and nothing is appended.
        """
        with self.writer() as writer:
            return writer.append_many(events)

    @contextmanager
    def writer(self) -> Iterator[LedgerWriter]:
        """Hold the ledger open for a run of appends, each still its own transaction.

        For bulk feeds in one process (about 20x faster than opening per append); other
        processes wait while it is held, so keep it short.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with connect(self.path, read_only=False, max_wait_s=self.max_wait_s) as con:
            yield LedgerWriter(self, con)

    def _append_in_transaction(
        self, con: duckdb.DuckDBPyConnection, incoming: list[ConsentEvent]
    ) -> AppendResult:
        if self.path not in _SCHEMA_SEEN:
            if not has_schema(con):
                create_schema(con)
            _SCHEMA_SEEN.add(self.path)
        stored = self._stored_by_id(con, [e.event_id for e in incoming])
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
        head = self._head(con)
        if fresh:
            now = utc_now()
            rows = _chain(fresh, head, now)
            _insert_events(con, rows)
            head = Head(rows[-1].seq, rows[-1].hash)
            con.execute("INSERT INTO heads VALUES (?, ?, ?)", [head.seq, head.hash, to_db_time(now)])
            result.appended = rows
        result.head = head
        return result

    # --- reading -------------------------------------------------------------------------

    def head(self) -> Head:
        with self._reader() as con:
            return self._head(con)

    def state(
        self, subject_id: str, purpose: str, at: datetime | None = None, *, as_of_seq: int | None = None
    ) -> ConsentState:
        """Consent of one subject for one purpose at `at` (default now), as the ledger knew
        it at `as_of_seq` (default: everything recorded so far)."""
        when = _as_of(at)
        with self._reader() as con:
            row = fetch_one(con,
                _DECIDING_SQL.format(subject_filter="AND subject_id = $subject"),
                {"purpose": purpose, "at": to_db_time(when), "as_of": as_of_seq or _MAX_SEQ,
                 "subject": subject_id},
            )
        deciding = _row_to_event(row) if row else None
        return ConsentState(subject_id, purpose, when, status_of(deciding, when), deciding)

    def states(
        self, purpose: str, at: datetime | None = None, *, as_of_seq: int | None = None
    ) -> list[ConsentState]:
        """The state of every subject the ledger has an effective event for (one query)."""
        when = _as_of(at)
        with self._reader() as con:
            rows = con.execute(
                _DECIDING_SQL.format(subject_filter="") + " ORDER BY subject_id",
                {"purpose": purpose, "at": to_db_time(when), "as_of": as_of_seq or _MAX_SEQ},
            ).fetchall()
        out = []
        for row in rows:
            event = _row_to_event(row)
            out.append(ConsentState(event.subject_id, purpose, when, status_of(event, when), event))
        return out

    def eligible(
        self, purpose: str, at: datetime | None = None, *, as_of_seq: int | None = None
    ) -> list[str]:
        """Subjects whose consent for `purpose` holds at `at`, sorted; one SQL query."""
        when = to_db_time(_as_of(at))
        with self._reader() as con:
            rows = con.execute(
                _ELIGIBLE_SQL, {"purpose": purpose, "at": when, "as_of": as_of_seq or _MAX_SEQ}
            ).fetchall()
        return [r[0] for r in rows]

    def events(
        self,
        *,
        subject_id: str | None = None,
        purpose: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[LedgerEvent]:
        """Events in sequence order, optionally for one subject / purpose / after a cursor."""
        sql = _SELECT_EVENTS + " WHERE seq > $after"
        params: dict[str, Any] = {"after": after_seq}
        if subject_id is not None:
            sql += " AND subject_id = $subject"
            params["subject"] = subject_id
        if purpose is not None:
            sql += " AND purpose = $purpose"
            params["purpose"] = purpose
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._reader() as con:
            return [_row_to_event(r) for r in con.execute(sql, params).fetchall()]

    def to_arrow(self) -> pa.Table:
        """Every event as an Arrow table (times as UTC), for exports."""
        with self._reader() as con:
            table = con.sql(_SELECT_EVENTS + " ORDER BY seq").to_arrow_table()
        for name in ("effective_at", "expires_at", "recorded_at"):
            idx = table.schema.get_field_index(name)
            table = table.set_column(idx, name, table.column(name).cast(pa.timestamp("us", tz="UTC")))
        return table

    # --- integrity -----------------------------------------------------------------------

    def verify(self, anchor: Head | None = None) -> Head:
        """Recompute the whole chain; raise `LedgerIntegrityError` at the first bad sequence.

        Besides every hash and link, the ledger's own `heads` log and an optional external
        `anchor` (e.g. the head a release recorded) must still be found in the chain, so a
        truncated tail is caught too.
        """
        with self._reader() as con:
            problems = [self._first_chain_problem(con), *self._anchor_problems(con, anchor)]
            head = self._head(con)
        problems = [p for p in problems if p is not None]
        if problems:
            raise min(problems, key=lambda p: p.seq)
        return head

    def _first_chain_problem(self, con: duckdb.DuckDBPyConnection) -> LedgerIntegrityError | None:
        row = fetch_one(con, _VERIFY_SQL, {"genesis": GENESIS_HASH})
        if row is None:
            return None
        seq, prior_seq, prior_hash, prev_hash, stored, recomputed = row
        if prior_seq is None and seq != 1:
            return LedgerIntegrityError(1, None, None, f"events 1..{seq - 1} are missing")
        if prior_seq is not None and seq > prior_seq + 1:
            return LedgerIntegrityError(
                prior_seq + 1, prev_hash, None, f"event {prior_seq + 1} is missing"
            )
        if prior_seq is not None and seq <= prior_seq:
            return LedgerIntegrityError(seq, None, None, f"sequence {seq} appears twice")
        expected_prev = GENESIS_HASH if prior_seq is None else prior_hash
        if prev_hash != expected_prev:
            return LedgerIntegrityError(
                seq, expected_prev, prev_hash, "prev_hash does not link to the previous event"
            )
        return LedgerIntegrityError(seq, recomputed, stored, "event content does not match its hash")

    def _anchor_problems(
        self, con: duckdb.DuckDBPyConnection, anchor: Head | None
    ) -> list[LedgerIntegrityError | None]:
        last_seq = self._head(con).seq
        anchors = con.execute(
            "SELECT h.seq, h.hash, e.hash FROM heads h LEFT JOIN events e USING (seq) "
            "WHERE e.hash IS DISTINCT FROM h.hash ORDER BY h.seq LIMIT 1"
        ).fetchall()
        if anchor is not None:
            found = fetch_one(con, "SELECT hash FROM events WHERE seq = ?", [anchor.seq])
            if found is None or found[0] != anchor.hash:
                anchors.append((anchor.seq, anchor.hash, found[0] if found else None))
        out: list[LedgerIntegrityError | None] = []
        for seq, expected, found in anchors:
            if found is None and seq > last_seq:
                out.append(LedgerIntegrityError(
                    last_seq + 1, expected if seq == last_seq + 1 else None, None,
                    f"the chain ends at {last_seq} but a recorded head reaches {seq}: tail truncated",
                ))
            else:
                out.append(LedgerIntegrityError(
                    seq, expected, found, "a recorded head no longer matches the chain"
                ))
        max_anchor = fetch_one(con, "SELECT max(seq) FROM heads")[0] or 0
        if last_seq > max_anchor:
            out.append(LedgerIntegrityError(
                max_anchor + 1, None, None,
                f"events {max_anchor + 1}..{last_seq} were not written by any append transaction",
            ))
        return out

    # --- helpers -------------------------------------------------------------------------

    def _reader(self):
        return connect(self.path, read_only=True, max_wait_s=self.max_wait_s)

    @staticmethod
    def _head(con: duckdb.DuckDBPyConnection) -> Head:
        row = fetch_one(con, "SELECT seq, hash FROM events WHERE seq = (SELECT max(seq) FROM events)")
        return Head(0, GENESIS_HASH) if row is None else Head(int(row[0]), row[1])

    @staticmethod
    def _stored_by_id(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, LedgerEvent]:
        if not ids:
            return {}
        if len(ids) <= _SMALL_BATCH:
            placeholders = ", ".join("?" * len(ids))
            rows = con.execute(_SELECT_EVENTS + f" WHERE event_id IN ({placeholders})", ids).fetchall()
            return {r[1]: _row_to_event(r) for r in rows}
        con.register("incoming_ids", pa.table({"event_id": pa.array(ids, pa.string())}))
        try:
            rows = con.execute(
                _SELECT_EVENTS + " WHERE event_id IN (SELECT event_id FROM incoming_ids)"
            ).fetchall()
        finally:
            con.unregister("incoming_ids")
        return {r[1]: _row_to_event(r) for r in rows}


_ARROW_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("event_id", pa.string()),
        ("subject_id", pa.string()),
        ("purpose", pa.string()),
        ("action", pa.string()),
        ("effective_at", pa.timestamp("us")),
        ("expires_at", pa.timestamp("us")),
        ("recorded_at", pa.timestamp("us")),
        ("actor", pa.string()),
        ("source", pa.string()),
        ("prev_hash", pa.string()),
        ("hash", pa.string()),
    ]
)


# Paths whose tables this process has already seen: saves a catalog query per append.
_SCHEMA_SEEN: set[Path] = set()
# Up to this many rows, plain parameter binding beats building an Arrow table.
_SMALL_BATCH = 64


def _insert_events(con: duckdb.DuckDBPyConnection, rows: list[LedgerEvent]) -> None:
    records = [{**r.model_dump(), **_db_times(r)} for r in rows]
    if len(records) <= _SMALL_BATCH:
        con.executemany(
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
            [[rec[c] for c in EVENT_COLUMNS] for rec in records],
        )
        return
    con.register("incoming_events", pa.Table.from_pylist(records, schema=_ARROW_SCHEMA))
    try:
        con.execute(f"INSERT INTO events SELECT {', '.join(EVENT_COLUMNS)} FROM incoming_events")
    finally:
        con.unregister("incoming_events")


def _db_times(event: LedgerEvent) -> dict[str, Any]:
    return {
        "action": str(event.action),
        "effective_at": to_db_time(event.effective_at),
        "expires_at": to_db_time(event.expires_at),
        "recorded_at": to_db_time(event.recorded_at),
    }


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
