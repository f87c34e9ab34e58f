"""Rows of the `events` table and the `LedgerEvent`s they hold, both ways.

Every module of the ledger reads and writes events through here, so the column order,
the UTC conversion and the chain head's query are each written once. Rows read back are
trusted (they were validated on the way in), so they are built without re-validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from consent.canonical import GENESIS_HASH
from consent.events import Action, LedgerEvent
from consent.store import EVENT_COLUMNS, from_db_time, to_db_time
from consentgen.duck import fetch_one

SELECT_EVENTS = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
TIME_COLUMNS = ("effective_at", "expires_at", "recorded_at")

# Up to this many rows, one multi-row INSERT ... VALUES beats registering an Arrow table
# (measured: ~3.5 ms fixed for Arrow; executemany is ~0.7 ms a row, never used).
_SMALL_BATCH = 16

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


class Head(NamedTuple):
    """The chain head: the last sequence number and its hash (0 and genesis when empty)."""

    seq: int
    hash: str


def row_to_event(row: Sequence[Any]) -> LedgerEvent:
    data = dict(zip(EVENT_COLUMNS, row, strict=True))
    for key in TIME_COLUMNS:
        data[key] = from_db_time(data[key])
    data["action"] = Action(data["action"])
    return LedgerEvent.model_construct(**data)


def read_head(con: duckdb.DuckDBPyConnection) -> Head:
    row = fetch_one(con, "SELECT seq, hash FROM events WHERE seq = (SELECT max(seq) FROM events)")
    return Head(0, GENESIS_HASH) if row is None else Head(int(row[0]), row[1])


def stored_by_id(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, LedgerEvent]:
    """The stored events among `ids`, by event id (one query, however many ids)."""
    if not ids:
        return {}
    if len(ids) <= _SMALL_BATCH:
        placeholders = ", ".join("?" * len(ids))
        rows = con.execute(SELECT_EVENTS + f" WHERE event_id IN ({placeholders})", ids).fetchall()
    else:
        con.register("incoming_ids", pa.table({"event_id": pa.array(ids, pa.string())}))
        try:
            rows = con.execute(
                SELECT_EVENTS + " WHERE event_id IN (SELECT event_id FROM incoming_ids)"
            ).fetchall()
        finally:
            con.unregister("incoming_ids")
    return {r[1]: row_to_event(r) for r in rows}


class Appenders:
    """DuckDB appenders for a connection that keeps appending (the service's writer): one
    flush per table per transaction, about half the cost of the INSERT statements they
    replace (measured: 2.3 vs 4.5 ms for a group of 8 with its head)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.events = con.appender("events")
        self.heads = con.appender("heads")

    def add(self, rows: list[LedgerEvent], head: Head, recorded_at: Any) -> None:
        try:
            self.events.append_rows([db_row(r) for r in rows])
            self.events.flush()
            self.heads.append_row(head.seq, head.hash, recorded_at)
            self.heads.flush()
        except BaseException:
            self.events.clear()
            self.heads.clear()
            raise


def insert_events(con: duckdb.DuckDBPyConnection, rows: list[LedgerEvent]) -> None:
    records = [{**r.model_dump(), **_db_values(r)} for r in rows]
    if len(records) <= _SMALL_BATCH:
        insert_values(con, "events", EVENT_COLUMNS, [[rec[c] for c in EVENT_COLUMNS] for rec in records])
        return
    con.register("incoming_events", pa.Table.from_pylist(records, schema=_ARROW_SCHEMA))
    try:
        con.execute(f"INSERT INTO events SELECT {', '.join(EVENT_COLUMNS)} FROM incoming_events")
    finally:
        con.unregister("incoming_events")


def insert_values(con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str],
                  rows: Sequence[Sequence[Any]]) -> None:
    """A few rows in one multi-row INSERT (one statement, not one per row)."""
    if not rows:
        return
    one = f"({', '.join('?' * len(columns))})"
    con.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * len(rows))}",
                [value for row in rows for value in row])


def db_row(r: LedgerEvent) -> tuple[Any, ...]:
    """One event as the `events` table's row, in `EVENT_COLUMNS` order (no model dump:
    this is on the service's hot path)."""
    return (r.seq, r.event_id, r.subject_id, r.purpose, str(r.action), to_db_time(r.effective_at),
            to_db_time(r.expires_at), to_db_time(r.recorded_at), r.actor, r.source, r.prev_hash,
            r.hash)


def _db_values(event: LedgerEvent) -> dict[str, Any]:
    return {
        "action": str(event.action),
        **{name: to_db_time(getattr(event, name)) for name in TIME_COLUMNS},
    }
