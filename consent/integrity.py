"""Verifying the ledger: the hash chain, its links, and the heads that must still be in it.

A hash chain alone cannot notice a truncated tail, so besides recomputing every hash and
link (vectorised in DuckDB, see `consent.canonical.HASH_SQL`) the ledger's own `heads`
log, and any head recorded outside it (e.g. by a release), must still be found in the
chain. The problem with the lowest sequence number is the one reported.
"""

from __future__ import annotations

import duckdb

from consent.canonical import GENESIS_HASH, HASH_SQL
from consent.rows import Head, read_head
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


def verify_chain(con: duckdb.DuckDBPyConnection, anchor: Head | None = None) -> Head:
    """The head, once the chain, the heads log and `anchor` all check out; else raise
    `LedgerIntegrityError` for the first bad sequence."""
    problems = [_first_chain_problem(con), *_anchor_problems(con, anchor)]
    found = [p for p in problems if p is not None]
    if found:
        raise min(found, key=lambda p: p.seq)
    return read_head(con)


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
    con: duckdb.DuckDBPyConnection, anchor: Head | None
) -> list[LedgerIntegrityError]:
    last_seq = read_head(con).seq
    anchors = con.execute(
        "SELECT h.seq, h.hash, e.hash FROM heads h LEFT JOIN events e USING (seq) "
        "WHERE e.hash IS DISTINCT FROM h.hash ORDER BY h.seq LIMIT 1"
    ).fetchall()
    if anchor is not None:
        found = fetch_one(con, "SELECT hash FROM events WHERE seq = ?", [anchor.seq])
        if found is None or found[0] != anchor.hash:
            anchors.append((anchor.seq, anchor.hash, found[0] if found else None))
    out: list[LedgerIntegrityError] = []
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
