"""Reading the ledger: consent state, eligibility and the event log, each one SQL query.

Every read takes an "as of" sequence number besides the time it asks about, so a build
can read one consistent snapshot while appends go on; the rule that decides a state is
`consent.state`'s, done here in SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from consent.events import LedgerEvent, to_utc, utc_now
from consent.rows import SELECT_EVENTS, TIME_COLUMNS, row_to_event
from consent.state import ConsentState, status_of
from consent.store import EVENT_COLUMNS, to_db_time
from consentgen.duck import fetch_one
from consentgen.errors import InvalidEventError

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

_MAX_SEQ = 2**62


def moment(at: datetime | None) -> datetime:
    """The instant a query asks about: now, or `at` in UTC (refused as an event's times
    are: naive, or outside the ledger's range)."""
    if at is None:
        return utc_now()
    try:
        return to_utc(at, "at")
    except ValueError as exc:
        raise InvalidEventError(str(exc)) from None


def _window(purpose: str, when: datetime, as_of_seq: int | None) -> dict[str, Any]:
    return {"purpose": purpose, "at": to_db_time(when), "as_of": as_of_seq or _MAX_SEQ}


def state(
    con: duckdb.DuckDBPyConnection,
    subject_id: str,
    purpose: str,
    when: datetime,
    as_of_seq: int | None,
) -> ConsentState:
    row = fetch_one(
        con,
        _DECIDING_SQL.format(subject_filter="AND subject_id = $subject"),
        {**_window(purpose, when, as_of_seq), "subject": subject_id},
    )
    deciding = row_to_event(row) if row else None
    return ConsentState(subject_id, purpose, when, status_of(deciding, when), deciding)


def states(
    con: duckdb.DuckDBPyConnection, purpose: str, when: datetime, as_of_seq: int | None
) -> list[ConsentState]:
    rows = con.execute(
        _DECIDING_SQL.format(subject_filter="") + " ORDER BY subject_id",
        _window(purpose, when, as_of_seq),
    ).fetchall()
    out = []
    for row in rows:
        event = row_to_event(row)
        out.append(ConsentState(event.subject_id, purpose, when, status_of(event, when), event))
    return out


def eligible(
    con: duckdb.DuckDBPyConnection, purpose: str, when: datetime, as_of_seq: int | None
) -> list[str]:
    rows = con.execute(_ELIGIBLE_SQL, _window(purpose, when, as_of_seq)).fetchall()
    return [r[0] for r in rows]


def events(
    con: duckdb.DuckDBPyConnection,
    *,
    subject_id: str | None,
    purpose: str | None,
    after_seq: int,
    limit: int | None,
) -> list[LedgerEvent]:
    sql = SELECT_EVENTS + " WHERE seq > $after"
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
    return [row_to_event(r) for r in con.execute(sql, params).fetchall()]


def purposes(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every purpose any event names, sorted."""
    return [r[0] for r in con.execute("SELECT DISTINCT purpose FROM events ORDER BY purpose").fetchall()]


def events_arrow(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every event in sequence order, times labelled UTC so exports say what they hold."""
    table = con.sql(SELECT_EVENTS + " ORDER BY seq").to_arrow_table()
    for name in TIME_COLUMNS:
        idx = table.schema.get_field_index(name)
        table = table.set_column(idx, name, table.column(name).cast(pa.timestamp("us", tz="UTC")))
    return table
