"""Short-lived DuckDB connections that wait their turn.

DuckDB lets one process write a file at a time, and while it does, even read-only opens
from other processes fail. Every opener in consentgen (ledger writers and readers, catalog
writers and readers, the sensor) therefore goes through `open_duckdb`, which retries with
exponential backoff and full jitter up to a bounded wait, then raises a clear error.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from consentgen.errors import ConsentgenError

DEFAULT_MAX_WAIT_S = 30.0
_FIRST_DELAY_S = 0.005
_MAX_DELAY_S = 0.25

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
    lock = _process_lock(path)
    deadline = time.monotonic() + max_wait_s
    delay = _FIRST_DELAY_S
    attempts = 0
    with lock:
        while True:
            attempts += 1
            try:
                con = duckdb.connect(str(path), read_only=read_only)
                break
            except duckdb.Error as exc:
                if not is_transient(exc):
                    raise locked_error(f"cannot open {what} {path}: {exc}") from exc
                now = time.monotonic()
                if now >= deadline:
                    raise locked_error(
                        f"{what} {path} stayed locked by another process for "
                        f"{max_wait_s:.0f}s ({attempts} attempts); try again later"
                    ) from exc
                time.sleep(min(random.uniform(0, delay), deadline - now))
                delay = min(delay * 2, _MAX_DELAY_S)
        try:
            yield con
        finally:
            con.close()
