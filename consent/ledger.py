"""The consent ledger: an append-only, hash-chained DuckDB file.

Writers hold the file only for one short transaction (DuckDB allows one writing process
per file) and wait their turn with backoff; readers open it read-only and briefly. Every
event is validated at the boundary, chained with `consent.canonical`, and never updated
or deleted by any code path here.

`Ledger` is the one door: it owns the file and its connections, and hands each job to the
module that holds it — `consent.writer` (appends), `consent.queries` (state, eligibility,
the log) and `consent.integrity` (verification).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from consent import queries
from consent.events import ConsentEvent, LedgerEvent, subject_key
from consent.integrity import snapshot_tables, verify_tables
from consent.rows import Head, read_head
from consent.state import ConsentState
from consent.store import connect, ensure_writable_schema
from consent.writer import AppendResult, LedgerWriter
from consentgen.duck import DEFAULT_MAX_WAIT_S
from consentgen.home import ledger_path

__all__ = ["AppendResult", "Head", "Ledger", "LedgerWriter"]

T = TypeVar("T")


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
        with self._writable() as con:
            ensure_writable_schema(con, self.path)
            return read_head(con)

    def append(self, event: ConsentEvent) -> LedgerEvent:
        """Append one event; the same event id with the same content returns the stored one."""
        return self.append_many([event]).event

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
        with self._writable() as con:
            yield LedgerWriter(con, self.path)

    # --- reading -------------------------------------------------------------------------

    def head(self) -> Head:
        with self._reader() as con:
            return read_head(con)

    def state(
        self, subject_id: str, purpose: str, at: datetime | None = None, *, as_of_seq: int | None = None
    ) -> ConsentState:
        """Consent of one subject for one purpose at `at` (default now), as the ledger knew
        it at `as_of_seq` (default: everything recorded so far)."""
        return self._at(queries.state, subject_key(subject_id), purpose, at=at, as_of_seq=as_of_seq)

    def states(
        self, purpose: str, at: datetime | None = None, *, as_of_seq: int | None = None
    ) -> list[ConsentState]:
        """The state of every subject the ledger has an effective event for (one query)."""
        return self._at(queries.states, purpose, at=at, as_of_seq=as_of_seq)

    def eligible(
        self, purpose: str, at: datetime | None = None, *, as_of_seq: int | None = None
    ) -> list[str]:
        """Subjects whose consent for `purpose` holds at `at`, sorted; one SQL query."""
        return self._at(queries.eligible, purpose, at=at, as_of_seq=as_of_seq)

    def events(
        self,
        *,
        subject_id: str | None = None,
        purpose: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[LedgerEvent]:
        """Events in sequence order, optionally for one subject / purpose / after a cursor."""
        with self._reader() as con:
            return queries.events(
                con, subject_id=None if subject_id is None else subject_key(subject_id),
                purpose=purpose, after_seq=after_seq, limit=limit,
            )

    def purposes(self) -> list[str]:
        """Every purpose the ledger holds an event for, sorted (none without a file)."""
        if not self.path.exists():
            return []
        with self._reader() as con:
            return queries.purposes(con)

    def to_arrow(self) -> pa.Table:
        """Every event as an Arrow table (times as UTC), for exports."""
        with self._reader() as con:
            return queries.events_arrow(con)

    # --- integrity -----------------------------------------------------------------------

    def verify(
        self, anchor: Head | None = None, *, anchors: Mapping[str, Head] | None = None
    ) -> Head:
        """Recompute the whole chain; raise `LedgerIntegrityError` at the first bad sequence.

        Besides every hash and link, the ledger's own `heads` log, an optional `anchor` and
        the named `anchors` (e.g. {"release v0003": the head it recorded}) must still be
        found in the chain, so a truncated tail, and a chain rewritten consistently since an
        anchor was taken, are caught too; a failing anchor is named. The file is held only
        while its tables are copied; the hashing runs after it is closed.
        """
        with self._reader() as con:
            tables = snapshot_tables(con)
        named: dict[str | None, Head] = dict(anchors or {})
        if anchor is not None:
            named[None] = anchor
        return verify_tables(tables, named)

    # --- connections ---------------------------------------------------------------------

    def _at(
        self, query: Callable[..., T], *args: str, at: datetime | None, as_of_seq: int | None
    ) -> T:
        """Run a state query for `at`, fixed before the open (which may wait its turn)."""
        when = queries.moment(at)
        with self._reader() as con:
            return query(con, *args, when, as_of_seq)

    def _reader(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return connect(self.path, read_only=True, max_wait_s=self.max_wait_s)

    def _writable(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return connect(self.path, read_only=False, max_wait_s=self.max_wait_s)
