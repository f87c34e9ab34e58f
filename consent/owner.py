"""The ledger held open by one long-lived process (the consent service).

While the service runs it is the ledger's one writer: it opens the file once and commits
every caller's append in group transactions (`commit`, driven by the service's
`consentgen.group_commit.LoopCommitter`), so eight callers cost one transaction, not
eight opens. Reads inside that process cannot open the file again (DuckDB's lock and ours
are held), so `HeldLedger` is the same `Ledger` API reading through cursors of the held
connection and appending through the owner: the reconcile, the exports and the state
queries run unchanged inside the service.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import duckdb

from consent.events import ConsentEvent
from consent.ledger import Ledger
from consent.rows import Appenders, Head, read_head
from consent.store import connect, ensure_writable_schema
from consent.writer import AppendResult, LedgerWriter, append_requests
from consentgen.duck import DEFAULT_MAX_WAIT_S
from consentgen.errors import LedgerError

_HELD: dict[Path, HeldLedger] = {}
_HELD_GUARD = threading.Lock()

Submit = Callable[[list[ConsentEvent]], "Future[AppendResult]"]


def held_ledger(path: str | Path) -> HeldLedger | None:
    """The ledger at `path` if this process holds it open (the service), else None."""
    with _HELD_GUARD:
        return _HELD.get(Path(path).resolve())


class HeldLedger(Ledger):
    """`Ledger` over a connection its process holds: reads use cursors, appends go
    through the owner (see the module docstring)."""

    def __init__(self, owner: LedgerOwner) -> None:
        super().__init__(owner.path, max_wait_s=owner.max_wait_s)
        self._owner = owner

    def init(self) -> Head:
        return self.head()

    def append_many(self, events: Any) -> AppendResult:
        return self._owner.submit(list(events)).result()

    @contextmanager
    def writer(self) -> Iterator[LedgerWriter]:
        raise LedgerError("the consent service holds the ledger: append through it")
        yield  # pragma: no cover

    def _reader(self):  # noqa: ANN202 - a context manager of a DuckDB connection
        return self._owner.cursor()

    def _writable(self):  # noqa: ANN202
        raise LedgerError("the consent service holds the ledger: append through it")


class LedgerOwner:
    """Open the ledger for writing and keep it open until `close`.

    `commit(requests)` appends several callers' requests in one transaction; `submit`
    appends one request from any thread, through the group commit once the service has
    installed it (`use_submit`), else in a transaction of its own.
    """

    def __init__(self, path: str | Path, *, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        self.path = Path(path).resolve()
        self.max_wait_s = max_wait_s
        self._stack = ExitStack()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._stack.enter_context(connect(self.path, read_only=False, max_wait_s=max_wait_s))
        try:
            # one thread per query: the service's statements are tiny and many, and DuckDB's
            # pool costs more CPU than it saves on them (measured: 1.8 -> 1.3 ms a commit)
            con.execute("SET threads = 1")
            ensure_writable_schema(con, self.path)
            self._head = read_head(con)
        except BaseException:
            self._stack.close()
            raise
        self._con = con
        self._guard = threading.Lock()
        self._writer = con.cursor()
        self._stack.callback(self._writer.close)
        self._appenders = Appenders(self._writer)
        self._submit: Submit | None = None
        self.ledger = HeldLedger(self)
        with _HELD_GUARD:
            _HELD[self.path] = self.ledger

    def commit(self, requests: Sequence[list[ConsentEvent]]) -> list[AppendResult | LedgerError]:
        """One group's transaction (`consent.writer.append_requests`), chained onto the head
        this writer knows: no other process can move it while the file is held."""
        with self._guard:
            outcomes = append_requests(self._writer, self.path, requests, head=self._head,
                                       appenders=self._appenders)
            for outcome in outcomes:
                if isinstance(outcome, AppendResult):
                    self._head = outcome.head
        return outcomes

    def use_submit(self, submit: Submit | None) -> None:
        """Route `submit` through a group committer (None: back to one transaction each)."""
        self._submit = submit

    def submit(self, events: list[ConsentEvent]) -> Future[AppendResult]:
        if self._submit is not None:
            return self._submit(events)
        done: Future[AppendResult] = Future()
        (outcome,) = self.commit([events])
        if isinstance(outcome, BaseException):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)
        return done

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one read, from any thread (DuckDB connections are not shared
        across threads; cursors of one are, each in its own thread)."""
        with self._guard:
            cur = self._con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def close(self) -> None:
        """Let the file go (the CLI and the pipeline open it again)."""
        with _HELD_GUARD:
            if _HELD.get(self.path) is self.ledger:
                del _HELD[self.path]
        with self._guard:
            self._stack.close()
