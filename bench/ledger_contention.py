"""Readers against writers on one ledger file, the CLI's way (open, work, close per call).

    .venv/bin/python bench/ledger_contention.py [--seconds 20] [--readers 2] [--writers 4]
                                                [--events 2000] [--max-wait 10]
                                                [--reads both|verify|eligible] [--label after]

Reader processes loop `verify()` and `eligible()` (in turn, or one of them); writer
processes loop `grant()` (one open, one transaction, one close each, as `consentgen
consent grant` does), all for the same wall-clock window. A writer that waits past `--max-wait` for its turn counts as a
failure (LedgerLockedError), as a CLI call would fail. Prints the appends done, the
failures and the writers' waits, and appends one JSON line to
bench/results/ledger_contention.jsonl. The figures that matter are appends done against
failures: a lock that prefers readers lets two readers starve every writer.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import write_result  # noqa: E402

PURPOSE = "synthetic-training"


def _reader(path: str, reads: str, start: float, stop: float, max_wait: float,
            out: mp.Queue) -> None:
    from consent import Ledger
    from consentgen.errors import LedgerLockedError

    ledger = Ledger(path, max_wait_s=max_wait)
    ops = fails = 0
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < stop:
        try:
            if reads == "eligible" or (reads == "both" and ops % 2):
                ledger.eligible(PURPOSE)
            else:
                ledger.verify()
            ops += 1
        except LedgerLockedError:
            fails += 1
    out.put(("reader", ops, fails, []))


def _writer(path: str, tag: str, start: float, stop: float, max_wait: float,
            out: mp.Queue) -> None:
    from consent import Ledger
    from consentgen.errors import LedgerLockedError

    ledger = Ledger(path, max_wait_s=max_wait)
    done = fails = 0
    waits: list[float] = []
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < stop:
        t0 = time.perf_counter()
        try:
            ledger.grant(f"{tag}-{done}", PURPOSE, actor="bench")
            done += 1
            waits.append(time.perf_counter() - t0)
        except LedgerLockedError:
            fails += 1
    out.put(("writer", done, fails, waits))


def run(args: argparse.Namespace) -> dict:
    from consent import ConsentEvent, Ledger

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "consent.duckdb"
        ledger = Ledger(path)
        ledger.init()
        ledger.append_many(ConsentEvent(subject_id=f"pre-{i}", purpose=PURPOSE, action="grant")
                           for i in range(args.events))
        ctx = mp.get_context("spawn")
        out: mp.Queue = ctx.Queue()
        start = time.time() + 3.0  # every process imported and waiting before the window opens
        stop = start + args.seconds
        procs = [ctx.Process(target=_reader, args=(str(path), args.reads, start, stop, args.max_wait, out))
                 for _ in range(args.readers)]
        procs += [ctx.Process(target=_writer, args=(str(path), f"w{w}", start, stop, args.max_wait, out))
                  for w in range(args.writers)]
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        final = ledger.verify().seq
    appends = sum(n for kind, n, _, _ in results if kind == "writer")
    waits = sorted(w for kind, _, _, ws in results if kind == "writer" for w in ws)
    assert final == args.events + appends, (final, args.events, appends)

    def pct(q: float) -> float | None:
        return round(waits[min(len(waits) - 1, int(q * len(waits)))], 4) if waits else None

    return {
        "label": args.label,
        "seconds": args.seconds,
        "readers": args.readers,
        "writers": args.writers,
        "prefilled_events": args.events,
        "reads": args.reads,
        "max_wait_s": args.max_wait,
        "appends_done": appends,
        "append_failures": sum(f for kind, _, f, _ in results if kind == "writer"),
        "appends_per_s": round(appends / args.seconds, 1),
        "appends_per_writer": sorted(n for kind, n, _, _ in results if kind == "writer"),
        "reader_ops": sum(n for kind, n, _, _ in results if kind == "reader"),
        "reader_failures": sum(f for kind, _, f, _ in results if kind == "reader"),
        "append_latency_p50_s": round(statistics.median(waits), 4) if waits else None,
        "append_latency_p99_s": pct(0.99),
        "append_latency_max_s": round(waits[-1], 4) if waits else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--events", type=int, default=2000, help="events in the ledger beforehand")
    parser.add_argument("--max-wait", type=float, default=10.0, help="a writer's bounded wait (s)")
    parser.add_argument("--reads", choices=("both", "verify", "eligible"), default="both",
                        help="what readers loop: verify() and eligible() in turn, or one")
    parser.add_argument("--label", default="", help="e.g. before / after, kept in the JSON line")
    figures = run(parser.parse_args())
    print(f"{figures['appends_done']} appends done, {figures['append_failures']} failed "
          f"(waited > {figures['max_wait_s']:.0f}s) in {figures['seconds']:.0f}s from "
          f"{figures['writers']} writers against {figures['readers']} readers "
          f"({figures['reader_ops']} reads, {figures['reader_failures']} failed); append "
          f"latency p50 {figures['append_latency_p50_s']} s, p99 {figures['append_latency_p99_s']} s, "
          f"max {figures['append_latency_max_s']} s; per writer {figures['appends_per_writer']}")
    print(f"wrote {write_result('ledger_contention', figures)}")


if __name__ == "__main__":
    main()
