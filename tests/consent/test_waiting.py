"""Opening the ledger file waits its turn behind other processes, then gives up clearly.

Holders are real processes: one holding the file through DuckDB alone (so the wait is on
DuckDB's own lock), one through `open_duckdb` (so the wait is on our lock file first).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from consent import Ledger
from consentgen.duck import open_duckdb
from consentgen.errors import ConsentgenError, LedgerLockedError
from consentgen.retry import retry_until
from tenacity import wait_fixed

# Holds the file open for writing until killed, or for `hold_s` and then lets go after
# writing `released` (so a later successful open proves it waited for the release).
HOLDER = """
    import sys, time
    from pathlib import Path
    path, how, hold_s, released = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    if how == "duckdb":
        import duckdb
        con = duckdb.connect(path)
        print("held", flush=True)
        time.sleep(hold_s)
        Path(released).touch()
        con.close()
    else:
        from consentgen.duck import open_duckdb
        with open_duckdb(path, read_only=how == "ours-read", max_wait_s=600):
            print("held", flush=True)
            if hold_s < 0:  # until the test says so
                while not Path(released).exists():
                    time.sleep(0.01)
            else:
                time.sleep(hold_s)
                Path(released).touch()
        if hold_s < 0:
            sys.exit(0)
    time.sleep(60)
"""


def _hold(path: Path, how: str, hold_s: float, released: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(path), how, str(hold_s), str(released)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _open_ledger(path: Path, max_wait_s: float):
    return open_duckdb(
        path, max_wait_s=max_wait_s, locked_error=LedgerLockedError, what="consent ledger"
    )


@pytest.mark.parametrize(
    ("how", "message"),
    [
        # DuckDB's lock: the retries are counted in the message
        ("duckdb", r"consent ledger .* stayed locked by another process for 0s \(\d+ attempts\); try again later"),
        # our lock file: the holder is one of ours, queued on before DuckDB is touched
        ("ours", r"consent ledger .* stayed locked by another process for 0s; try again later"),
    ],
    ids=["duckdb-lock", "lock-file"],
)
def test_a_held_ledger_is_waited_for_then_refused_then_usable_once_released(
    ledger: Ledger, tmp_path: Path, how: str, message: str
) -> None:
    released = tmp_path / "released"
    holder = _hold(ledger.path, how, 3600, released)
    try:
        started = time.monotonic()
        with pytest.raises(LedgerLockedError, match=message):
            with _open_ledger(ledger.path, 0.5):
                pass
        assert time.monotonic() - started >= 0.5  # it did wait before giving up
    finally:
        holder.kill()
        holder.wait()
    with _open_ledger(ledger.path, 30) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(0,)]


@pytest.mark.parametrize("how", ["duckdb", "ours"])
def test_a_wait_in_progress_succeeds_when_the_holder_lets_go(
    ledger: Ledger, tmp_path: Path, how: str
) -> None:
    released = tmp_path / "released"
    holder = _hold(ledger.path, how, 1.0, released)
    try:
        with _open_ledger(ledger.path, 60) as con:
            assert released.exists()  # opened only after the holder let go
            con.execute("INSERT INTO ledger_meta VALUES ('waited', 'yes')")
    finally:
        holder.kill()
        holder.wait()
    assert ledger.head().seq == 0


def _gate_closed(path: Path) -> bool:
    """True while a writer holds the gate (it is queued for the lock)."""
    fd = os.open(path.with_name(path.name + ".gate"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_waiting_writer_stops_new_readers_so_readers_cannot_starve_it(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Shared locks overlap: without the gate a stream of readers keeps a writer out for
    good. With it, a reader that comes after a queued writer waits behind it."""
    reading, writer_done = tmp_path / "stop-reading", tmp_path / "writer-done"
    reader = _hold(ledger.path, "ours-read", -1, reading)
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(ledger.path), "ours", "0", str(writer_done)],
        stdout=subprocess.PIPE, text=True)
    try:
        give_up = time.monotonic() + 60  # a guard against a hang, not a timing assertion
        while not _gate_closed(ledger.path):  # the writer is queued behind the reader
            assert writer.poll() is None, "the writer got in past a reader holding the file"
            assert time.monotonic() < give_up, "the queued writer never closed the gate"
            time.sleep(0.01)
        with pytest.raises(LedgerLockedError):  # a new reader may not overtake it
            with open_duckdb(ledger.path, read_only=True, max_wait_s=0.5,
                             locked_error=LedgerLockedError):
                pass
        reading.touch()  # the first reader lets go: the writer is next
        assert reader.wait(timeout=60) == 0
        assert writer.stdout is not None and writer.stdout.readline().strip() == "held"
    finally:
        for proc in (reader, writer):
            proc.kill()
            proc.wait()
    with open_duckdb(ledger.path, read_only=True) as con:  # and readers go on after it
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(0,)]


def test_a_file_that_is_not_a_database_is_refused_without_waiting(tmp_path: Path) -> None:
    junk = tmp_path / "consent.duckdb"
    junk.write_text("not a database " * 20)
    with pytest.raises(LedgerLockedError, match=r"^cannot open consent ledger .*not a valid DuckDB"):
        with _open_ledger(junk, 600):
            pass


class Busy(Exception):
    pass


def test_retry_until_retries_only_what_it_is_told_and_raises_its_own_error_at_the_deadline() -> None:
    calls: list[float] = []

    def busy_twice() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise Busy
        return "done"

    assert retry_until(busy_twice, retry_on=lambda e: isinstance(e, Busy), wait=wait_fixed(0.01),
                       deadline=time.monotonic() + 30, give_up=ConsentgenError) == "done"
    assert len(calls) == 3

    def broken() -> None:
        raise ValueError("not worth waiting")

    with pytest.raises(ValueError, match="not worth waiting"):  # propagates unchanged
        retry_until(broken, retry_on=lambda e: isinstance(e, Busy), wait=wait_fixed(0.01),
                    deadline=time.monotonic() + 30, give_up=ConsentgenError)

    def always_busy() -> None:
        raise Busy

    deadline = time.monotonic() + 0.2
    with pytest.raises(ConsentgenError, match=r"^gave up after \d+ attempts$") as caught:
        retry_until(always_busy, retry_on=lambda e: isinstance(e, Busy), wait=wait_fixed(0.01),
                    deadline=deadline, give_up=lambda n: ConsentgenError(f"gave up after {n} attempts"))
    assert time.monotonic() >= deadline
    assert isinstance(caught.value.__cause__, Busy)
