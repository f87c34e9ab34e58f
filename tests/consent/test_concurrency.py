"""Several processes appending at once lose nothing and keep a gapless, verifying chain."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from consent import Ledger

PROCESSES = 4
APPENDS_EACH = 200


def _writer(path: str, worker: int, count: int) -> int:
    ledger = Ledger(path, max_wait_s=120)
    for i in range(count):
        ledger.grant(f"w{worker}-s{i}", "synthetic-training", event_id=f"w{worker}-e{i}",
                     actor=f"worker-{worker}")
    return count


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "consent.duckdb"
    Ledger(path).init()
    ctx = mp.get_context("spawn")  # no forked DuckDB state
    with ctx.Pool(PROCESSES) as pool:
        done = pool.starmap(_writer, [(str(path), w, APPENDS_EACH) for w in range(PROCESSES)])
    assert done == [APPENDS_EACH] * PROCESSES
    ledger = Ledger(path)
    events = ledger.events()
    total = PROCESSES * APPENDS_EACH
    assert [e.seq for e in events] == list(range(1, total + 1))
    assert {e.event_id for e in events} == {
        f"w{w}-e{i}" for w in range(PROCESSES) for i in range(APPENDS_EACH)
    }
    assert ledger.verify().seq == total
    # each worker's own events kept their order
    for w in range(PROCESSES):
        mine = [int(e.event_id.split("-e")[1]) for e in events if e.event_id.startswith(f"w{w}-")]
        assert mine == sorted(mine)
