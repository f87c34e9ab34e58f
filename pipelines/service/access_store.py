"""`access.duckdb`: the service's tokens (hashed) and its hash-chained access log.

Its own file, not the ledger's: the access log grows with every request, reads of it
must never wait behind consent appends, and the ledger stays the small system of record.
While the service runs it holds this file as it holds the ledger; otherwise the CLI opens
it briefly (`consentgen token ...`, `consentgen access-log`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from consentgen.duck import DEFAULT_MAX_WAIT_S, open_duckdb
from consentgen.errors import ServiceError
from consentgen.home import data_home

ACCESS_FILE = "access.duckdb"

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS tokens (
        name        VARCHAR   NOT NULL PRIMARY KEY,
        role        VARCHAR   NOT NULL,
        token_hash  VARCHAR   NOT NULL UNIQUE,
        created_at  TIMESTAMP NOT NULL,
        revoked_at  TIMESTAMP
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS access_log (
        seq         BIGINT    NOT NULL PRIMARY KEY,
        logged_at   TIMESTAMP NOT NULL,
        token       VARCHAR   NOT NULL,
        role        VARCHAR   NOT NULL,
        method      VARCHAR   NOT NULL,
        path        VARCHAR   NOT NULL,
        subjects    VARCHAR[] NOT NULL,
        status      INTEGER   NOT NULL,
        latency_us  BIGINT    NOT NULL,
        client      VARCHAR   NOT NULL,
        prev_hash   VARCHAR   NOT NULL,
        hash        VARCHAR   NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS access_heads (
        seq         BIGINT    NOT NULL,
        hash        VARCHAR   NOT NULL,
        recorded_at TIMESTAMP NOT NULL
    )
    """,
)


def access_path(home: str | Path | None = None) -> Path:
    return data_home(home) / ACCESS_FILE


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in SCHEMA:
        con.execute(statement)


@contextmanager
def open_access(path: Path, *, read_only: bool,
                max_wait_s: float = DEFAULT_MAX_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to `access.duckdb` (created with its tables by a writer)."""
    if read_only and not path.exists():
        raise ServiceError(f"no access database at {path}: no token was ever made and the "
                           "service never ran in this home")
    with open_duckdb(path, read_only=read_only, max_wait_s=max_wait_s, locked_error=ServiceError,
                     what="access database") as con:
        if not read_only:
            ensure_schema(con)
        yield con
