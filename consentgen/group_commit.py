"""Group commit on the event loop: whatever callers queued in one turn of the loop is
committed as one transaction.

DuckDB allows one writer per file, and a commit costs nearly the same for one row as for
a hundred; so a service answering many callers queues their writes here and each caller
waits only until the transaction holding its write is durable. The commit runs on the
loop's own thread, blocking it for the millisecond or two it takes: DuckDB's Python API
takes the GIL back several times per statement, and in a thread of its own, competing
with a busy loop for the GIL, one transaction took 5-100 ms instead of one (measured on
this 2-core machine). While the loop is blocked, requests pile up in the sockets, so the
next batch is larger by itself: throughput follows load with no timer to tune. A caller
gets only what its own write came to (a result or its own error): one bad request never
fails the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from consentgen.errors import ConsentgenError

I = TypeVar("I")  # noqa: E741 - an item queued by one caller
R = TypeVar("R")  # what that caller's item came to

CommitBatch = Callable[[Sequence[I]], Sequence[R | BaseException]]
"""Commits a batch in one transaction; returns, per item in order, its result or the
error that refused that item alone. Raising fails every item of the batch (nothing of it
was committed)."""


class CommitterClosedError(ConsentgenError):
    """The committer is shutting down and takes no more writes."""


class LoopCommitter(Generic[I, R]):
    """Batches items submitted on `loop` and commits them after the loop's current turn."""

    def __init__(self, commit: CommitBatch, loop: asyncio.AbstractEventLoop, *,
                 max_batch: int = 4096) -> None:
        self._commit = commit
        self._loop = loop
        self._max_batch = max_batch
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._scheduled = False
        self._closed = False
        self.batches = 0  # transactions committed: gauges for the health page and the bench
        self.items = 0
        self.seconds = 0.0  # spent committing (the loop was blocked for it)

    def submit(self, item: I) -> asyncio.Future[R]:
        """Queue `item` (on the loop's thread); the future resolves once it is committed."""
        if self._closed:
            raise CommitterClosedError("the service is shutting down; nothing appended")
        future: asyncio.Future[R] = self._loop.create_future()
        self._pending.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            # two hops: let the requests read in this turn reach their submit first
            self._loop.call_soon(self._loop.call_soon, self._flush)
        return future

    def submit_threadsafe(self, item: I) -> concurrent.futures.Future[R]:
        """`submit` from another thread (a worker, the thread pool)."""
        async def one() -> R:
            return await self.submit(item)

        return asyncio.run_coroutine_threadsafe(one(), self._loop)

    def flush(self) -> None:
        """Commit everything queued now (at shutdown, on the loop's thread)."""
        while self._pending:
            self._flush()

    def close(self) -> None:
        self._closed = True
        self.flush()

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending[:self._max_batch], self._pending[self._max_batch:]
        if self._pending and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        live = [(item, fut) for item, fut in batch if not fut.cancelled()]
        if not live:
            return
        started = time.perf_counter()
        try:
            outcomes = self._commit([item for item, _ in live])
        except BaseException as exc:  # noqa: BLE001 - the callers get it; the loop lives on
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            self.seconds += time.perf_counter() - started
        self.batches += 1
        self.items += len(live)
        for (_, fut), outcome in zip(live, outcomes, strict=True):
            if fut.done():
                continue
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
