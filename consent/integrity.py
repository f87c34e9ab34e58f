"""Verifying the ledger: the hash chain, its links, and the heads that must still be in it.

A hash chain alone cannot notice a truncated tail, so besides recomputing every hash and
link (vectorised in DuckDB, see `consent.canonical.HASH_SQL`) the ledger's own `heads`
log, and any head recorded outside it (each release's, named by the caller), must still
be found in the chain. A chain rewritten consistently (every hash recomputed after an
edit) passes the first two checks and fails only the last: the heads recorded outside the
file are what anchor it. The problem with the lowest sequence number is the one reported.

The file is held only while its two tables are copied out (`snapshot_tables`); the
hashing runs afterwards on the copy, so a verify keeps writers waiting no longer than a
read does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from consent.canonical import GENESIS_HASH, HASH_SQL
from consent.rows import Head, read_head
from consent.store import EVENT_COLUMNS, describe_missing, missing_parts
from consentgen.duck import fetch_one
from consentgen.errors import LedgerIntegrityError

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

_HEADS_SCHEMA = pa.schema([("seq", pa.int64()), ("hash", pa.string())])


@dataclass(frozen=True)
class Tables:
    """The ledger's events and heads log, copied out of the file, and what it lacked."""

    events: pa.Table
    heads: pa.Table
    missing: dict[str, list[str]]


def snapshot_tables(con: duckdb.DuckDBPyConnection) -> Tables:
    """Copy what verification reads, so the file can be closed at once. A damaged file's
    missing parts are recorded rather than raised: they are reported as integrity errors."""
    missing = missing_parts(con)
    if "events" in missing:
        return Tables(pa.table({}), pa.table({}), missing)
    events = con.sql(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events").to_arrow_table()
    heads = (_HEADS_SCHEMA.empty_table() if "heads" in missing
             else con.sql("SELECT seq, hash FROM heads").to_arrow_table())
    return Tables(events, heads, missing)


def verify_tables(tables: Tables, anchors: Mapping[str | None, Head] | None = None) -> Head:
    """The head, once the chain, the heads log and every anchor check out; else raise
    `LedgerIntegrityError` for the first bad sequence. An anchor is keyed by who recorded
    it (e.g. "release v0003"), which its failure names; None for an unnamed one."""
    if "events" in tables.missing:
        raise LedgerIntegrityError(1, None, None, f"{describe_missing(tables.missing)}; "
                                   "no event can be checked")
    con = duckdb.connect()
    try:
        con.register("events", tables.events)
        con.register("heads", tables.heads)
        found = [p for p in (_first_chain_problem(con), *_anchor_problems(con, tables, anchors))
                 if p is not None]
        if found:
            raise min(found, key=lambda p: p.seq)
        return read_head(con)
    finally:
        con.close()


def _first_chain_problem(con: duckdb.DuckDBPyConnection) -> LedgerIntegrityError | None:
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
    con: duckdb.DuckDBPyConnection, tables: Tables, anchors: Mapping[str | None, Head] | None
) -> list[LedgerIntegrityError]:
    last_seq = read_head(con).seq
    out: list[LedgerIntegrityError] = []
    if "heads" in tables.missing:
        out.append(LedgerIntegrityError(
            1, None, None, f"{describe_missing(tables.missing)} (the log of heads every append "
            f"writes): nothing vouches for events 1..{last_seq}",
        ))
    else:
        row = fetch_one(
            con, "SELECT h.seq, h.hash, e.hash FROM heads h LEFT JOIN events e USING (seq) "
            "WHERE e.hash IS DISTINCT FROM h.hash ORDER BY h.seq LIMIT 1")
        if row is not None:
            out.append(_head_problem("a recorded head", *row, last_seq))
        max_anchor = fetch_one(con, "SELECT max(seq) FROM heads")[0] or 0
        if last_seq > max_anchor:
            out.append(LedgerIntegrityError(
                max_anchor + 1, None, None,
                f"events {max_anchor + 1}..{last_seq} were not written by any append transaction",
            ))
    for name, head in (anchors or {}).items():
        found = (GENESIS_HASH,) if head.seq == 0 else fetch_one(
            con, "SELECT hash FROM events WHERE seq = ?", [head.seq])
        if found is None or found[0] != head.hash:
            what = (f"the head {name} recorded" if name else "the anchored head") + f" (sequence {head.seq})"
            out.append(_head_problem(what, head.seq, head.hash, found[0] if found else None, last_seq))
    return out


def _head_problem(what: str, seq: int, expected: str, found: str | None,
                  last_seq: int) -> LedgerIntegrityError:
    if found is None and seq > last_seq:
        return LedgerIntegrityError(
            last_seq + 1, expected if seq == last_seq + 1 else None, None,
            f"the chain ends at {last_seq} but {what} reaches {seq}: tail truncated",
        )
    return LedgerIntegrityError(seq, expected, found, f"{what} no longer matches the chain")
