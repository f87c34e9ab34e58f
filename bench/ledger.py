"""Ledger throughput: appends, import, verify and eligible, as ratios to same-run baselines.

    .venv/bin/python bench/ledger.py [--events 1000000]

Writes one JSON line to bench/results/ledger.jsonl.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import write_result  # noqa: E402
from consent import ConsentEvent, Ledger, import_events  # noqa: E402
from consent.canonical import DOMAIN_PREFIX, canonical_bytes  # noqa: E402

PURPOSE = "synthetic-training"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def synthetic_events(n: int, subjects: int, seed: int = 0) -> list[ConsentEvent]:
    """A realistic mix: mostly grants, some revokes, some expiring, times spread over a year."""
    import random

    rng = random.Random(seed)
    events = []
    for i in range(n):
        action = "revoke" if rng.random() < 0.15 else "grant"
        effective = T0 + timedelta(minutes=rng.randrange(525_600))
        expires = effective + timedelta(days=rng.randrange(30, 400)) if action == "grant" and rng.random() < 0.3 else None
        events.append(ConsentEvent(
            event_id=f"ev-{seed}-{i}", subject_id=f"subject-{rng.randrange(subjects):07d}",
            purpose=PURPOSE if rng.random() < 0.9 else "model-evaluation", action=action,
            effective_at=effective, expires_at=expires, actor="bench", source="form-v1",
        ))
    return events


def appends_per_s_open_close(path: Path, n: int, tag: str) -> float:
    ledger = Ledger(path, max_wait_s=300)
    t0 = time.perf_counter()
    for i in range(n):
        ledger.grant(f"{tag}-{i}", PURPOSE)
    return n / (time.perf_counter() - t0)


def _worker(path: str, n: int, tag: str) -> tuple[float, float]:
    t0 = time.time()
    appends_per_s_open_close(Path(path), n, tag)
    return t0, time.time()


def bench_appends(tmp: Path, n: int) -> dict:
    single_open_close = appends_per_s_open_close(tmp / "a.duckdb", n, "oc")
    ledger = Ledger(tmp / "b.duckdb")
    ledger.init()
    t0 = time.perf_counter()
    with ledger.writer() as writer:
        for i in range(n):
            writer.append(ConsentEvent(subject_id=f"k-{i}", purpose=PURPOSE, action="grant"))
    kept_open = n / (time.perf_counter() - t0)
    path = tmp / "c.duckdb"
    Ledger(path).init()
    procs = 4
    with mp.get_context("spawn").Pool(procs) as pool:
        spans = pool.starmap(_worker, [(str(path), n, f"p{w}") for w in range(procs)])
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    concurrent = procs * n / wall
    assert Ledger(path).verify().seq == procs * n
    return {
        "appends_per_s_kept_open": round(kept_open, 1),
        "appends_per_s_open_close_1proc": round(single_open_close, 1),
        "appends_per_s_open_close_4proc_total": round(concurrent, 1),
        "ratio_kept_open_vs_open_close": round(kept_open / single_open_close, 2),
        "ratio_4proc_vs_1proc_open_close": round(concurrent / single_open_close, 2),
        "appends_each": n,
    }


def bench_import(tmp: Path, n: int) -> dict:
    events = synthetic_events(n, subjects=max(n // 5, 1), seed=1)
    csv_path = tmp / "import.csv"
    with csv_path.open("w") as fh:
        fh.write("event_id,subject_id,purpose,action,effective_at,expires_at,actor,source\n")
        for e in events:
            exp = e.expires_at.isoformat() if e.expires_at else ""
            fh.write(f"{e.event_id},{e.subject_id},{e.purpose},{e.action},{e.effective_at.isoformat()},{exp},{e.actor},{e.source}\n")
    ledger = Ledger(tmp / "import.duckdb")
    t0 = time.perf_counter()
    result = import_events(ledger, csv_path)
    elapsed = time.perf_counter() - t0
    assert len(result.appended) == n
    return {"import_csv_events_per_s": round(n / elapsed, 1), "import_events": n}


def build_ledger(path: Path, n: int, batch: int = 100_000) -> Ledger:
    ledger = Ledger(path)
    with ledger.writer() as writer:
        for start in range(0, n, batch):
            writer.append_many(synthetic_events(min(batch, n - start), subjects=max(n // 5, 1), seed=start))
    return ledger


def bench_verify_and_eligible(tmp: Path, sizes: list[int]) -> dict:
    out: dict = {}
    for n in sizes:
        ledger = build_ledger(tmp / f"big-{n}.duckdb", n)
        events = ledger.events()
        encoded = [DOMAIN_PREFIX + e.prev_hash.encode() + canonical_bytes(e.hashed_fields()) for e in events]
        t0 = time.perf_counter()
        for blob in encoded:
            hashlib.sha256(blob).hexdigest()
        raw = n / (time.perf_counter() - t0)
        del events, encoded
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            assert ledger.verify().seq == n
            best = min(best, time.perf_counter() - t0)
        verify_rate = n / best
        at = T0 + timedelta(days=200)
        eligible_s = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            subjects = ledger.eligible(PURPOSE, at)
            eligible_s = min(eligible_s, time.perf_counter() - t0)
        out[str(n)] = {
            "verify_events_per_s": round(verify_rate),
            "raw_sha256_events_per_s": round(raw),
            "verify_vs_raw_sha256_ratio": round(verify_rate / raw, 2),
            "eligible_wall_s": round(eligible_s, 4),
            "eligible_subjects": len(subjects),
        }
        print(f"{n:>9} events: verify {verify_rate:,.0f}/s = {verify_rate / raw:.2f}x raw sha256 "
              f"({raw:,.0f}/s); eligible() {eligible_s * 1000:.1f} ms -> {len(subjects)} subjects")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--import-events", type=int, default=100_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        appends = bench_appends(tmp, args.appends)
        print(f"appends/s: kept-open {appends['appends_per_s_kept_open']}, open+close "
              f"{appends['appends_per_s_open_close_1proc']} (1 proc), "
              f"{appends['appends_per_s_open_close_4proc_total']} (4 procs total); "
              f"kept-open/open-close = {appends['ratio_kept_open_vs_open_close']}x")
        imported = bench_import(tmp, args.import_events)
        print(f"import: {imported['import_csv_events_per_s']:,} events/s "
              f"= {imported['import_csv_events_per_s'] / appends['appends_per_s_kept_open']:.0f}x kept-open single appends")
        imported["ratio_import_vs_kept_open_append"] = round(
            imported["import_csv_events_per_s"] / appends["appends_per_s_kept_open"], 1)
        scaled = bench_verify_and_eligible(tmp, args.sizes)
    path = write_result("ledger", {**appends, **imported, "by_size": scaled})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
