"""Short-lived DuckDB connections that wait their turn, fairly.

DuckDB lets one process write a file at a time, and while it does, even read-only opens
from other processes fail. Every opener in consentgen (ledger writers and readers, catalog
writers and readers, the sensor) therefore goes through `open_duckdb`, which

1. queues on two advisory lock files beside the database: `<file>.gate`, which a writer
   holds (exclusive) while it waits, and which every reader must pass (shared, let go at
   once) before it may start; then `<file>.lock`, exclusive for writers, shared for
   readers, held while the database is open. Readers alone would always overlap on the
   shared lock and a writer would never find it free (two processes looping `verify()`
   kept eight writers to 14 appends in 120 s); the gate stops new readers while a writer
   waits, so it waits only for the reads already under way. Our own processes thus take
   turns without paying for failed DuckDB opens and without idle gaps between polls;
2. opens DuckDB, retrying with exponential backoff and full jitter while some other
   program holds the file.

Every poll is jittered, so processes that queue together do not retry in step and the
same one does not always win. Both waits share one budget (`max_wait_s`) and one retry
policy (`consentgen.retry`), and end in the same clear error naming the file and the wait.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from tenacity import wait_random_exponential

from consentgen.errors import ConsentgenError
from consentgen.retry import retry_until

DEFAULT_MAX_WAIT_S = 30.0
# Our own processes release the lock file the moment they close, so polling it briefly
# and often beats backing off far; a failed DuckDB open costs a few ms of its own, and
# full jitter keeps several waiting processes from retrying in step.
_OPEN_BACKOFF = wait_random_exponential(multiplier=0.005, max=0.25)
# Lock files are free the moment their holder lets go: poll often (full jitter up to 1 ms
# growing to 5 ms), so a waiting writer wins its turn instead of losing each race in step.
_LOCK_POLL = wait_random_exponential(multiplier=0.001, exp_base=1.5, max=0.005)

# Markers of a lock held by another process, or of an instance of the same file opened in
# this process with another configuration (read-only vs read-write): both pass once the
# other side closes, so both are worth waiting for.
_TRANSIENT = (
    "could not set lock",
    "conflicting lock",
    "different configuration",
    "database is locked",
    "resource temporarily unavailable",
)

# One DuckDB file is one database instance per process; serialising our own threads on it
# turns write-write transaction conflicts into plain waiting.
_process_locks: dict[Path, threading.RLock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(path: Path) -> threading.RLock:
    with _process_locks_guard:
        return _process_locks.setdefault(path, threading.RLock())


@contextmanager
def _held(lock: threading.RLock) -> Iterator[None]:
    try:
        yield
    finally:
        lock.release()


def _open_lock(path: Path, suffix: str, *, required: bool) -> int | None:
    """A lock file's descriptor, or None where a reader cannot create it (a read-only
    folder: DuckDB's own lock still protects the file); a writer's failure is raised."""
    try:
        return os.open(path.with_name(path.name + suffix), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if required:
            raise
        return None


def _flock(fd: int, *, shared: bool, deadline: float,
           give_up: Callable[[int], ConsentgenError]) -> None:
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    retry_until(lambda: fcntl.flock(fd, mode), retry_on=lambda e: isinstance(e, BlockingIOError),
                wait=_LOCK_POLL, deadline=deadline, give_up=give_up)


@contextmanager
def _file_lock(
    path: Path, *, shared: bool, deadline: float, give_up: Callable[[int], ConsentgenError]
) -> Iterator[None]:
    """Hold `<path>.lock` (flock) while the database is open, after the gate (see the
    module docstring): a writer holds the gate until it has the lock; a reader passes it."""
    lock = _open_lock(path, ".lock", required=not shared)
    if lock is None:
        yield
        return
    gate = _open_lock(path, ".gate", required=False)
    try:
        if gate is not None:
            _flock(gate, shared=shared, deadline=deadline, give_up=give_up)
            if shared:
                fcntl.flock(gate, fcntl.LOCK_UN)  # passed: a writer may close it behind us
        try:
            _flock(lock, shared=shared, deadline=deadline, give_up=give_up)
        finally:
            if gate is not None and not shared:
                # in (or given up): the next writer may queue at the gate now, so it is
                # the next in while the one that just wrote cannot barge back ahead of it
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        if gate is not None:
            os.close(gate)
        os.close(lock)


def is_transient(exc: BaseException) -> bool:
    """True when `exc` is DuckDB telling us another holder has the file right now."""
    return isinstance(exc, duckdb.Error) and any(m in str(exc).lower() for m in _TRANSIENT)


@contextmanager
def open_duckdb(
    path: str | Path,
    *,
    read_only: bool = False,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    locked_error: type[ConsentgenError] = ConsentgenError,
    what: str = "database",
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open `path`, retrying while another process holds it; always closes on exit.

    Raises `locked_error` with one clear line when the file stays held past `max_wait_s`.
    """
    path = Path(path).resolve()
    deadline = time.monotonic() + max_wait_s

    def still_locked(attempts: int, *, counted: bool) -> ConsentgenError:
        tried = f" ({attempts} attempts)" if counted else ""
        return locked_error(
            f"{what} {path} stayed locked by another process for "
            f"{max_wait_s:.0f}s{tried}; try again later"
        )

    lock = _process_lock(path)
    if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
        # another thread of this process holds the file (the service keeps its ledger open)
        raise still_locked(1, counted=False)
    with _held(lock), _file_lock(
        path,
        shared=read_only,
        deadline=deadline,
        give_up=lambda attempts: still_locked(attempts, counted=False),
    ):
        try:
            con = retry_until(
                lambda: duckdb.connect(str(path), read_only=read_only),
                retry_on=is_transient,
                wait=_OPEN_BACKOFF,
                deadline=deadline,
                give_up=lambda attempts: still_locked(attempts, counted=True),
            )
        except duckdb.Error as exc:  # not a lock: waiting would not help
            raise locked_error(f"cannot open {what} {path}: {exc}") from exc
        try:
            yield con
        finally:
            con.close()


def fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: object = None
) -> tuple | None:
    """First row of a query, or None, leaving no unfinished result behind.

    DuckDB 2.0 refuses further work on a connection whose last result was only partly
    fetched (`fetchone()` on a query that could return more rows), so single-row reads
    fetch everything and take the first row.
    """
    rows = con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    return rows[0] if rows else None
