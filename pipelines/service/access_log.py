"""The access log: every request the service answered, hash-chained like the ledger.

Each entry says when, which token (name and role), what method and path, which subject
ids it touched, its outcome and latency. Entries are chained with the ledger's own code
(`consent.canonical`, under the domain `consentgen-access-v1|`), and `access_heads` logs
the head after each commit, so an edit, a deletion, a reordering and a truncated tail are
all caught, and the first bad sequence is named. The service appends an entry before the
response leaves it: a request the caller saw answered is on the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from consent.rows import insert_values
from consent.canonical import canonical_document, chain_hash, genesis_hash
from consentgen.duck import fetch_one
from consentgen.errors import AccessLogIntegrityError

DOMAIN = b"consentgen-access-v1|"
GENESIS = genesis_hash(DOMAIN)
HASHED = ("seq", "logged_at", "token", "role", "method", "path", "subjects", "status", "latency_us",
          "client")
COLUMNS = (*HASHED, "prev_hash", "hash")


@dataclass
class AccessEntry:
    """One answered request, before it is given its place in the chain."""

    logged_at: datetime
    token: str
    role: str
    method: str
    path: str
    status: int
    latency_us: int
    client: str
    subjects: list[str] = field(default_factory=list)


def _encode(row: dict[str, Any]) -> bytes:
    return canonical_document({k: row[k] for k in HASHED})


def read_head(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    row = fetch_one(con, "SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1")
    return (0, GENESIS) if row is None else (int(row[0]), row[1])


def append_entries(con: duckdb.DuckDBPyConnection, entries: Sequence[AccessEntry],
                   head: tuple[int, str], *, record_head: bool = True,
                   appender: duckdb.Appender | None = None) -> tuple[int, str]:
    """Chain and insert `entries` in the caller's transaction; returns the new head, which
    is logged in `access_heads` when `record_head` (the service does so at most once a
    second and when it stops: a statement per commit halved its throughput)."""
    seq, prev = head
    rows = []
    for entry in entries:
        seq += 1
        row = {"seq": seq, "logged_at": entry.logged_at.astimezone(UTC), "token": entry.token,
               "role": entry.role, "method": entry.method, "path": entry.path,
               "subjects": list(entry.subjects), "status": int(entry.status),
               "latency_us": int(entry.latency_us), "client": entry.client}
        digest = chain_hash(prev, _encode(row), DOMAIN)
        rows.append([*(row[k] if k != "logged_at" else row[k].replace(tzinfo=None) for k in HASHED),
                     prev, digest])
        prev = digest
    if appender is not None:
        try:
            appender.append_rows(rows)
            appender.flush()
        except BaseException:
            appender.clear()
            raise
    else:
        for start in range(0, len(rows), 64):
            insert_values(con, "access_log", COLUMNS, rows[start:start + 64])
    if rows and record_head:
        con.execute("INSERT INTO access_heads VALUES (?, ?, ?)",
                    [seq, prev, datetime.now(UTC).replace(tzinfo=None)])
    return seq, prev


def entries(con: duckdb.DuckDBPyConnection, *, after_seq: int = 0, limit: int | None = None,
            since: datetime | None = None) -> list[dict[str, Any]]:
    """Entries in sequence order (times as UTC), after a cursor and/or since a time."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM access_log WHERE seq > ?"
    params: list[Any] = [after_seq]
    if since is not None:
        sql += " AND logged_at >= ?"
        params.append(since.astimezone(UTC).replace(tzinfo=None))
    sql += " ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    out = []
    for row in con.execute(sql, params).fetchall():
        item = dict(zip(COLUMNS, row, strict=True))
        item["logged_at"] = item["logged_at"].replace(tzinfo=UTC)
        out.append(item)
    return out


def verify(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """Recompute the chain; the head when intact, else `AccessLogIntegrityError` naming
    the first bad sequence. Every head the service logged must still be in the chain
    (entries after the last one, at most a second's, are vouched for by the next). One
    transaction, so a commit landing between the two reads is not taken for a cut tail."""
    con.execute("BEGIN TRANSACTION")
    try:
        try:
            found = entries(con)
            heads = con.execute("SELECT seq, hash FROM access_heads ORDER BY seq").fetchall()
        except duckdb.Error as exc:  # a dropped table or column: damage, not a traceback
            raise AccessLogIntegrityError(1, "its tables are damaged ("
                                          f"{' '.join(str(exc).split())[:200]})") from None
    finally:
        con.execute("ROLLBACK")
    return _check(found, heads)


def _check(found: list[dict[str, Any]], heads: list[tuple[int, str]]) -> tuple[int, str]:
    expected_seq, prev = 0, GENESIS
    hashes: dict[int, str] = {}
    for item in found:
        expected_seq += 1
        seq = item["seq"]
        if seq != expected_seq:
            raise AccessLogIntegrityError(expected_seq, f"entry {expected_seq} is missing"
                                          if seq > expected_seq else f"sequence {seq} repeats")
        if item["prev_hash"] != prev:
            raise AccessLogIntegrityError(seq, "prev_hash does not link to the previous entry")
        if chain_hash(prev, _encode(item), DOMAIN) != item["hash"]:
            raise AccessLogIntegrityError(seq, "entry content does not match its hash")
        prev = item["hash"]
        hashes[seq] = prev
    last = expected_seq
    for seq, digest in heads:
        if seq > last:
            raise AccessLogIntegrityError(last + 1, f"the log ends at {last} but a commit "
                                          f"recorded a head at {seq}: tail truncated")
        if hashes.get(seq) != digest:
            raise AccessLogIntegrityError(seq, "a recorded head no longer matches the chain")
    top = max((seq for seq, _ in heads), default=0)
    if last > top:  # the service logs a head with every commit
        raise AccessLogIntegrityError(top + 1, f"entries {top + 1}..{last} were not written by "
                                      "any commit of the service")
    return last, prev
