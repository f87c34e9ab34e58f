"""The consent service: appends/s over HTTP next to the CLI and a kept-open ledger, and
revoke -> withdrawn latency, in one run on a fresh temp home.

    .venv/bin/python bench/service.py [--single 600] [--single-each 300] [--batch 1000]
                                      [--batches 10] [--batches-each 4] [--cli 16] [--homes 3]

Modes, each as events/s and as a ratio to (a):
(a) `consent.Ledger(path).writer()` kept open in this process, one event per append
    (events built inside the timed loop, as a Python caller builds them); and
    `Ledger.append_many` with `--batch` events a call;
(b) `consentgen consent grant` subprocesses, `--cli` of them from 1 and from 4 processes;
(c) a real `consentgen serve` subprocess: single-event POSTs from 1 and 8 concurrent clients,
    and `--batch`-event POSTs from 1 and 8, each with p50 / p99 latency, the server's CPU
    per event (from /proc) and the events per ledger transaction (from /v1/health);
(d) revoke -> withdrawn on `tests.pipelines.steps.published.publish_rows` homes: request
    start -> the subject's files gone, on an idle service ("idle": the first revoke
    after start-up) and right after a previous revoke's files went ("behind": that pass
    is still finishing its bans, card and erasure), and the latency the catalog records.

The load client is lean on purpose (the server's throughput is what is measured; httpx
costs ~1.5 ms of CPU a request here, as much as the server): raw asyncio streams writing
prebuilt HTTP/1.1 requests, keep-alive, one connection per client. Appends one JSON line
to bench/results/service.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from bench._results import write_result  # noqa: E402
from consent import ConsentEvent, Ledger  # noqa: E402

PURPOSE = "synthetic-training"
AT = "2026-01-05T09:00:00Z"
CLI = str(Path(sys.executable).with_name("consentgen"))
CLIENT = "raw asyncio HTTP/1.1 (prebuilt requests, keep-alive, one connection per client)"
GOALS = {"single_8_clients_per_s": 1000, "batched_per_s": 20000, "revoke_withdrawn_s": 1.0}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def event(tag: str, i: int) -> dict:
    return {"subject_id": f"{tag}-{i % 997}", "purpose": PURPOSE, "action": "grant",
            "event_id": f"{tag}-{i}", "effective_at": AT}


# --- (a) kept-open ledger, (b) the CLI ------------------------------------------------------


def bench_ledger(tmp: Path, single: int, batch: int, batches: int) -> dict:
    ledger = Ledger(tmp / "baseline.duckdb")
    ledger.init()
    t0 = time.perf_counter()
    with ledger.writer() as writer:
        for i in range(single):
            writer.append(ConsentEvent(**event("kept", i)))
    kept = single / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for b in range(batches):
        ledger.append_many([ConsentEvent(**event(f"many{b}", i)) for i in range(batch)])
    many = batch * batches / (time.perf_counter() - t0)
    assert ledger.verify().seq == single + batch * batches
    return {"kept_open_single_per_s": round(kept, 1), "append_many_per_s": round(many, 1)}


def _grants(home: Path, tag: str, n: int) -> None:
    env = {**os.environ, "CONSENTGEN_HOME": str(home)}
    for i in range(n):
        subprocess.run([CLI, "consent", "grant", f"{tag}-{i}", "--purpose", PURPOSE],
                       env=env, check=True, capture_output=True)


def bench_cli(home: Path, n: int) -> dict:
    t0 = time.perf_counter()
    _grants(home, "cli1", n)
    one = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda w: _grants(home, f"cli4-{w}", n // 4), range(4)))
    four = 4 * (n // 4) / (time.perf_counter() - t0)
    return {"cli_1proc_per_s": round(one, 1), "cli_4proc_per_s": round(four, 1),
            "cli_each": n}


# --- (c) HTTP against a real server ---------------------------------------------------------


class Server:
    """`consentgen serve` on a free loopback port, stopped by its pid."""

    def __init__(self, home: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.home = home
        self.log = home.parent / f"serve-{self.port}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [CLI, "serve", "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "CONSENTGEN_HOME": str(home)}, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                info = json.loads((home / "service.json").read_text())
                if info["pid"] == self.proc.pid and self.call("GET", "/v1/health")[0] == 200:
                    self.owner = info["token"]
                    self.writer = self.call("POST", "/v1/tokens", {"name": "bench-cmp", "role":
                                            "consent-writer"}, self.owner)[1]["token"]
                    return
            except (OSError, ValueError, KeyError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"consentgen serve exited: {self.log.read_text()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("consentgen serve did not answer in 90 s")

    def call(self, method: str, path: str, body: object = None,
             token: str | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {token}"} if token else {})})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def ledger_commits(self) -> tuple[int, int]:
        found = self.call("GET", "/v1/health")[1]["commits"]["ledger"]
        return found["transactions"], found["items"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _post(port: int, token: str, body: bytes) -> bytes:
    return (f"POST /v1/consent/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(head[9:12]), await reader.readexactly(length)


async def _client(port: int, requests: list[bytes], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in requests:
            t0 = time.perf_counter()
            writer.write(data)
            status, body = await _answer(reader)
            latencies.append(time.perf_counter() - t0)
            if status != 201:
                raise RuntimeError(f"{status}: {body[:300]!r}")
    finally:
        writer.close()
        await writer.wait_closed()


def http_mode(server: Server, tag: str, clients: int, each: int, batch: int) -> dict:
    """`clients` connections x `each` requests of `batch` events (1: a bare object)."""
    requests = []
    for c in range(clients):
        mine = []
        for r in range(each):
            events = [event(f"{tag}-{c}-{r}", i) for i in range(batch)]
            mine.append(_post(server.port, server.writer,
                              json.dumps(events if batch > 1 else events[0]).encode()))
        requests.append(mine)
    latencies: list[float] = []

    async def run() -> None:
        await asyncio.gather(*(_client(server.port, mine, latencies) for mine in requests))

    tx0, items0 = server.ledger_commits()
    cpu0, client0, t0 = server.cpu_s(), time.process_time(), time.perf_counter()
    asyncio.run(run())
    wall, client = time.perf_counter() - t0, time.process_time() - client0
    cpu = server.cpu_s() - cpu0
    tx1, items1 = server.ledger_commits()
    n = clients * each * batch
    return {"events_per_s": round(n / wall, 1), "events": n, "clients": clients,
            "events_per_request": batch, "p50_ms": round(pct(latencies, 0.5) * 1e3, 2),
            "p99_ms": round(pct(latencies, 0.99) * 1e3, 2),
            "server_cpu_ms_per_event": round(cpu / n * 1e3, 3),
            "client_cpu_ms_per_request": round(client / (clients * each) * 1e3, 3),
            "events_per_transaction": round((items1 - items0) / max(1, tx1 - tx0), 2)}


def bench_http(home: Path, args: argparse.Namespace) -> tuple[dict, int]:
    server = Server(home)
    try:
        http_mode(server, "warm", 4, 25, 1)
        http_mode(server, "warmb", 2, 1, args.batch)
        modes = {
            "http_single_1": http_mode(server, "s1", 1, args.single, 1),
            "http_single_8": http_mode(server, "s8", 8, args.single_each, 1),
            "http_batch_1": http_mode(server, "b1", 1, args.batches, args.batch),
            "http_batch_8": http_mode(server, "b8", 8, args.batches_each, args.batch),
        }
        head = server.call("GET", "/v1/consent/verify?releases=false", None, server.owner)[1]
        return modes, head["head"]["seq"]
    finally:
        server.stop()


# --- (d) revoke -> withdrawn ----------------------------------------------------------------


def _gone_after(server: Server, subject: str, files: list[Path]) -> float:
    t0 = time.perf_counter()
    status, _ = server.call("POST", "/v1/consent/events", {
        "subject_id": subject, "purpose": PURPOSE, "action": "revoke"}, server.writer)
    assert status == 201
    while any(p.exists() for p in files):
        if time.perf_counter() - t0 > 60:
            raise RuntimeError(f"{subject}'s files still there after 60 s")
        time.sleep(0.002)
    return time.perf_counter() - t0


def bench_revokes(tmp: Path, homes: int) -> dict:
    from pipelines.catalog import Catalog, Withdrawal
    from tests.pipelines.steps.published import publish_rows

    idle, behind, recorded = [], [], []
    for k in range(homes):
        home = tmp / f"published-{k}" / "home"
        home.parent.mkdir()
        subprocess.run([CLI, "init"], env={**os.environ, "CONSENTGEN_HOME": str(home)},
                       check=True, capture_output=True)
        pub = publish_rows(home)
        server = Server(home)
        try:
            for subject, model, into in (("A", "m0", idle), ("D", "m1", behind)):
                files = [pub.folder(i.version) / i.file_name for i in pub.of_model(model)]
                into.append(_gone_after(server, subject, files))
        finally:
            server.stop()  # waits for D's pass: the service joins its withdrawal worker
        recorded += [w.latency_s for w in Catalog(home).select(Withdrawal) if w.latency_s is not None]
    return {"revoke_idle_p50_s": round(pct(idle, 0.5), 3), "revoke_idle_max_s": round(max(idle), 3),
            "revoke_behind_p50_s": round(pct(behind, 0.5), 3),
            "revoke_behind_max_s": round(max(behind), 3),
            "revoke_recorded_latency_max_s": round(max(recorded), 3),
            "revokes": len(idle) + len(behind), "revoke_idle_s": [round(x, 3) for x in idle],
            "revoke_behind_s": [round(x, 3) for x in behind]}


# --- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--single", type=int, default=600, help="requests of the 1-client mode")
    parser.add_argument("--single-each", type=int, default=300, help="requests per client (8)")
    parser.add_argument("--batch", type=int, default=1000, help="events per batched request")
    parser.add_argument("--batches", type=int, default=10, help="batched requests, 1 client")
    parser.add_argument("--batches-each", type=int, default=4, help="batched requests per client (8)")
    parser.add_argument("--cli", type=int, default=16, help="CLI grants per mode")
    parser.add_argument("--homes", type=int, default=3, help="published homes (2 revokes each)")
    parser.add_argument("--label", default="", help="a note kept with the figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-service-") as d:
        tmp = Path(d)
        home = tmp / "home"
        subprocess.run([CLI, "init"], env={**os.environ, "CONSENTGEN_HOME": str(home)},
                       check=True, capture_output=True)
        base = bench_ledger(tmp, args.single, args.batch, args.batches)
        cli = bench_cli(home, args.cli)
        modes, head = bench_http(home, args)
        revokes = bench_revokes(tmp, args.homes)
        shutil.rmtree(tmp, ignore_errors=True)
    expected = args.cli + 4 * (args.cli // 4) + 100 + 2 * args.batch + sum(
        m["events"] for m in modes.values())
    assert head == expected, f"ledger head {head}, {expected} events sent"
    kept = base["kept_open_single_per_s"]
    rows = [("kept-open Ledger.writer(), single", kept, None),
            (f"Ledger.append_many, {args.batch}/call", base["append_many_per_s"], None),
            ("CLI consent grant, 1 process", cli["cli_1proc_per_s"], None),
            ("CLI consent grant, 4 processes", cli["cli_4proc_per_s"], None)]
    rows += [(f"HTTP {m['events_per_request']}/request, {m['clients']} client(s)",
              m["events_per_s"], m) for m in modes.values()]
    print(f"client: {CLIENT}; {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"duckdb {duckdb.__version__}")
    print(f"{'mode':42s} {'events/s':>10s} {'x kept-open':>11s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'srv ms/ev':>9s} {'ev/tx':>6s}")
    for name, rate, m in rows:
        extra = (f" {m['p50_ms']:8.1f} {m['p99_ms']:8.1f} {m['server_cpu_ms_per_event']:9.3f} "
                 f"{m['events_per_transaction']:6.1f}") if m else ""
        shown = f"{rate:10,.0f}" if rate >= 100 else f"{rate:10.2f}"
        print(f"{name:42s} {shown} {rate / kept:10.3f}x{extra}")
    print(f"revoke -> files gone: idle p50 {revokes['revoke_idle_p50_s']:.3f}s max "
          f"{revokes['revoke_idle_max_s']:.3f}s; behind a pass p50 {revokes['revoke_behind_p50_s']:.3f}s "
          f"max {revokes['revoke_behind_max_s']:.3f}s; catalog latency max "
          f"{revokes['revoke_recorded_latency_max_s']:.3f}s ({revokes['revokes']} revokes)")
    batched = max(modes["http_batch_1"]["events_per_s"], modes["http_batch_8"]["events_per_s"])
    met = {"single_8_clients_per_s": modes["http_single_8"]["events_per_s"] >= 1000,
           "batched_per_s": batched >= 20000,
           "revoke_withdrawn_s": revokes["revoke_idle_max_s"] < 1.0}
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
    figures = {**base, **cli, **modes, **revokes, "label": args.label, "client": CLIENT,
               "cores": os.cpu_count(), "duckdb": duckdb.__version__,
               "ratios_vs_kept_open": {name: round(rate / kept, 2) for name, rate, _ in rows},
               "goals": GOALS, "goals_met": met}
    print(f"wrote {write_result('service', figures)}")


if __name__ == "__main__":
    main()
