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


# The columns each table must still have for the chain to be checked and extended.
REQUIRED = {"events": EVENT_COLUMNS, "heads": ("seq", "hash", "recorded_at")}


def missing_parts(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Tables (value: every required column) or columns that a damaged ledger lacks;
    empty when the ledger's structure is whole. One catalog query."""
    have: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main'"
    ).fetchall():
        have.setdefault(table, set()).add(column)
    out = {}
    for table, columns in REQUIRED.items():
        lacking = [c for c in columns if c not in have.get(table, set())]
        if lacking:
            out[table] = lacking
    return out


def describe_missing(missing: dict[str, list[str]]) -> str:
    """"the heads table is missing", "the events table lacks column(s) source", ..."""
    parts = []
    for table, lacking in missing.items():
        if len(lacking) == len(REQUIRED[table]):
            parts.append(f"the {table} table is missing")
        else:
            parts.append(f"the {table} table lacks column(s) {', '.join(lacking)}")
    return "; ".join(parts)


def ensure_writable_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Create a new ledger's tables; refuse to write onto a damaged one (a dropped `heads`
    recreated empty would hide which events it vouched for)."""
    missing = missing_parts(con)
    if len(missing) == len(REQUIRED) and all(len(v) == len(REQUIRED[k]) for k, v in missing.items()):
        create_schema(con)  # a new file (no ledger table at all)
    elif missing:
        raise damaged(path, missing)


def damaged(path: Path, missing: dict[str, list[str]]) -> LedgerError:
    return LedgerError(f"consent ledger {path} is damaged ({describe_missing(missing)}); "
                       "nothing appended; run `consentgen consent verify`")


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
