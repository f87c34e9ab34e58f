"""What the running service holds: the ledger and access files, the token table, and the
worker that withdraws a revoked subject's images at once.

One `ServiceRuntime` per process, made when the app starts and closed when it stops, so
a test can run a real server on a real home and the CLI's `serve` the same code.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
import asyncio
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from consent.owner import HeldLedger, LedgerOwner
from consentgen.group_commit import LoopCommitter
from consentgen.home import existing_home, ledger_path
from pipelines.service import access_log, tokens
from pipelines.service.access_store import access_path, open_access
from pipelines.service.roles import Role
from pipelines.service.settings import ServiceSettings

log = logging.getLogger("consentgen.service")
T = TypeVar("T")
LOCAL_TOKEN_NAME = "local-cli"
HEAD_EVERY_S = 0.0
"""How often the access log's head is logged in `access_heads`: at every commit, so no
committed entry is ever unvouched for (a cut tail is always caught)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a token's (or a JWT's) name and role."""

    name: str
    role: Role
    via: str = "token"  # token | jwt | local


@dataclass
class WithdrawalReport:
    subject_id: str
    asked_at: float  # time.monotonic() when the revoke was accepted
    done_at: float | None = None
    withdrawn: int = 0  # images the pass withdrew (it may have covered other revokes too)
    line: str = ""
    error: str | None = None


class AccessOwner:
    """`access.duckdb` held open: access entries in group transactions, token changes each
    in its own, all on the committing thread (see `commit`)."""

    def __init__(self, path: Path, *, max_wait_s: float) -> None:
        self.path = path
        self._stack = ExitStack()
        con = self._stack.enter_context(open_access(path, read_only=False, max_wait_s=max_wait_s))
        con.execute("SET threads = 1")  # as for the ledger (consent.owner)
        self._con = con
        self._head = access_log.read_head(con)
        self._head_logged_at = 0.0  # time.monotonic() of the last `access_heads` row
        self.tokens = tokens.by_digest(con)
        self._guard = threading.Lock()
        self._writer = con.cursor()
        self._stack.callback(self._writer.close)
        self._appender = self._writer.appender("access_log")

    def commit(self, items: Sequence[Any]) -> list[Any]:
        """Entries (`AccessEntry`) in one transaction; an operation (a callable taking the
        connection: a token change) in its own, its error its caller's alone."""
        out: list[Any] = [None] * len(items)
        entries = [it for it in items if isinstance(it, access_log.AccessEntry)]
        with self._guard:
            con = self._writer
            if entries:
                con.execute("BEGIN TRANSACTION")
                now = time.monotonic()
                record = now - self._head_logged_at >= HEAD_EVERY_S
                try:
                    head = access_log.append_entries(con, entries, self._head, record_head=record,
                                                     appender=self._appender)
                    con.execute("COMMIT")
                except BaseException:
                    _rollback(con)
                    raise
                self._head = head
                if record:
                    self._head_logged_at = now
            for i, item in enumerate(items):
                if callable(item):
                    try:
                        con.execute("BEGIN TRANSACTION")
                        out[i] = item(con)
                        con.execute("COMMIT")
                    except BaseException as exc:  # noqa: BLE001 - that caller's error alone
                        _rollback(con)
                        out[i] = exc
        return out

    def read(self, op: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self._guard:
            cur = self._con.cursor()
        try:
            return op(cur)
        finally:
            cur.close()

    def close(self) -> None:
        with self._guard:
            if self._head[0] > 0:  # vouch for the last entries before letting go
                self._writer.execute("INSERT INTO access_heads SELECT ?, ?, now() WHERE NOT EXISTS "
                                     "(SELECT 1 FROM access_heads WHERE seq = ?)",
                                     [self._head[0], self._head[1], self._head[0]])
            self._stack.close()


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back, unless the failure (at COMMIT) already did."""
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass


@dataclass
class ServiceRuntime:
    home: Path
    settings: ServiceSettings
    ledger_owner: LedgerOwner
    access: AccessOwner
    local_token: str
    jwt: Any = None  # a JWT verifier when [service] names a JWKS (pipelines.service.jwt_auth)
    withdrawals: dict[str, WithdrawalReport] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _withdraw_queue: queue.SimpleQueue[WithdrawalReport | None] = field(
        default_factory=queue.SimpleQueue)
    _withdraw_thread: threading.Thread | None = None
    ledger_commits: LoopCommitter[Any, Any] | None = None
    access_commits: LoopCommitter[Any, Any] | None = None

    @classmethod
    def open(cls, home: Path, settings: ServiceSettings) -> ServiceRuntime:
        root = existing_home(home)
        owner = LedgerOwner(ledger_path(root), max_wait_s=settings.open_wait_s)
        try:
            access = AccessOwner(access_path(root), max_wait_s=settings.open_wait_s)
        except BaseException:
            owner.close()
            raise
        return cls(root, settings, owner, access, tokens.new_token())

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin group-committing on `loop` (the server's), where every append waits."""
        self.ledger_commits = LoopCommitter(self.ledger_owner.commit, loop)
        # on the loop too: a committing thread competing with the loop for the GIL made
        # every answer wait longer (measured: 720 vs ~870 appends/s from 8 clients)
        self.access_commits = LoopCommitter(self.access.commit, loop)
        self.ledger_owner.use_submit(self.ledger_commits.submit_threadsafe)
        if self._withdraw_thread is None:  # after the app's imports: see `_withdraw_loop`
            self._withdraw_thread = threading.Thread(target=self._withdraw_loop,
                                                     name="withdraw", daemon=True)
            self._withdraw_thread.start()

    async def stop(self) -> None:
        """Commit what is queued and take no more (on the loop, before `close`): the
        ledger first, then, once the handlers its last commit resumed have answered, the
        access log, so those answers are logged too."""
        self.ledger_owner.use_submit(None)
        if self.ledger_commits is not None:
            self.ledger_commits.close()
        await asyncio.sleep(0.05)
        if self.access_commits is not None:
            self.access_commits.close()

    @property
    def healthy(self) -> bool:
        """Whether a revoke accepted now would be withdrawn at once."""
        return self._withdraw_thread is not None and self._withdraw_thread.is_alive()

    @property
    def ledger(self) -> HeldLedger:
        return self.ledger_owner.ledger

    def principal_for(self, token: str) -> Principal | None:
        digest = tokens.digest(token)
        if digest == tokens.digest(self.local_token):
            return Principal(LOCAL_TOKEN_NAME, Role.OWNER, "local")
        record = self.access.tokens.get(digest)
        return None if record is None else Principal(record.name, record.role)

    # --- withdrawal at once ------------------------------------------------------------

    def withdraw_soon(self, subject_id: str) -> WithdrawalReport:
        """Queue the reconcile of one subject whose revoke was just accepted."""
        report = WithdrawalReport(subject_id, time.monotonic())
        self.withdrawals[subject_id] = report
        self._withdraw_queue.put(report)
        return report

    def _withdraw_loop(self) -> None:
        """Each pass takes every revoke queued by then: a CMP's batch of a hundred revokes
        is one pass over all of them, not a hundred passes the last one waits behind."""
        from pipelines.service.withdrawal import prepare, withdraw_subjects

        prepare()  # the pass's imports (~1 s), now rather than inside the first revoke's
        while True:
            reports = [self._withdraw_queue.get()]
            while True:
                try:
                    reports.append(self._withdraw_queue.get_nowait())
                except queue.Empty:
                    break
            live = [r for r in reports if r is not None]
            if live:
                self._withdraw(live, withdraw_subjects)
            if len(live) < len(reports):
                return

    def _withdraw(self, reports: list[WithdrawalReport], withdraw_subjects: Callable) -> None:
        subjects = list(dict.fromkeys(r.subject_id for r in reports))
        count, line, error = 0, "", None
        try:
            count, line = withdraw_subjects(self.home, self.ledger, subjects)
        except Exception as exc:  # noqa: BLE001 - logged, and the sensor tries again
            error = str(exc)
            log.error("withdrawing %s at once failed (%s); the next reconcile retries",
                      ", ".join(subjects), exc)
        done = time.monotonic()
        for report in reports:
            report.withdrawn, report.line, report.error, report.done_at = count, line, error, done

    def close(self) -> None:
        self._withdraw_queue.put(None)
        if self._withdraw_thread is not None:
            self._withdraw_thread.join(30)
        self.ledger_owner.close()
        self.access.close()
