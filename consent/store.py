"""The ledger's DuckDB tables and how to open them.

Times are stored as UTC `TIMESTAMP` (microseconds); the boundary (`consent.events`)
guarantees they were timezone-aware before conversion. `heads` is an append-only log of
the chain head after each write transaction: it lets `verify()` notice a truncated tail,
which a hash chain alone cannot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from consentgen.duck import DEFAULT_MAX_WAIT_S, fetch_one, open_duckdb
from consentgen.errors import LedgerError, LedgerLockedError

SCHEMA_VERSION = "1"

EVENT_COLUMNS = (
    "seq",
    "event_id",
    "subject_id",
    "purpose",
    "action",
    "effective_at",
    "expires_at",
    "recorded_at",
    "actor",
    "source",
    "prev_hash",
    "hash",
)

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS events (
        seq          BIGINT    NOT NULL PRIMARY KEY,
        event_id     VARCHAR   NOT NULL UNIQUE,
        subject_id   VARCHAR   NOT NULL,
        purpose      VARCHAR   NOT NULL,
        action       VARCHAR   NOT NULL CHECK (action IN ('grant', 'revoke')),
        effective_at TIMESTAMP NOT NULL,
        expires_at   TIMESTAMP,
        recorded_at  TIMESTAMP NOT NULL,
        actor        VARCHAR   NOT NULL,
        source       VARCHAR   NOT NULL,
        prev_hash    VARCHAR   NOT NULL,
        hash         VARCHAR   NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS heads (
        seq         BIGINT    NOT NULL,
        hash        VARCHAR   NOT NULL,
        recorded_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger_meta (
        key   VARCHAR NOT NULL PRIMARY KEY,
        value VARCHAR NOT NULL
    )
    """,
)


def to_db_time(value: datetime | None) -> datetime | None:
    """Aware UTC datetime -> naive UTC for a TIMESTAMP column."""
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def from_db_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in SCHEMA:
        con.execute(statement)
    con.execute(
        "INSERT INTO ledger_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
        [SCHEMA_VERSION],
    )


def has_schema(con: duckdb.DuckDBPyConnection) -> bool:
    found = fetch_one(con,
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events'"
    )
    return bool(found and found[0])


@contextmanager
def connect(
    path: Path, *, read_only: bool, max_wait_s: float = DEFAULT_MAX_WAIT_S
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to the ledger file, waiting out other processes' locks."""
    if read_only and not path.exists():
        raise LedgerError(f"no consent ledger at {path}; run `consentgen init` first")
    with open_duckdb(
        path,
        read_only=read_only,
        max_wait_s=max_wait_s,
        locked_error=LedgerLockedError,
        what="consent ledger",
    ) as con:
        if read_only and not has_schema(con):
            raise LedgerError(f"{path} is not a consent ledger (no events table)")
        yield con
