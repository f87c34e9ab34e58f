"""SIGKILL of the service mid-load (issue 13, section 7): no acknowledged event lost, no
half batch, the chain intact, and the service starts again on the same home.

Clients append single events and lists of events with unique ids while the test kills
the server's process group about a second in; every request's ids and answer are kept.
Afterwards the ledger file is read with `consent.Ledger` directly: each request's
events are all there or none is, and every one answered 201 is there.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from consent import Ledger
from consentgen.home import ledger_path
from tests.pipelines.service.server import Service, start

PURPOSE = "synthetic-training"
KILL_AFTER_S = 1.0
BATCH = 40


@dataclass
class Sent:
    ids: list[str]
    acknowledged: bool = False


def _client(service: Service, token: str, name: str, batch: int, sent: list[Sent],
            stop: threading.Event, errors: list[str]) -> None:
    try:
        _append_until_gone(service, token, name, batch, sent, stop)
    except BaseException as exc:  # noqa: BLE001 - the test thread reports it
        errors.append(f"{name}: {exc!r}")


def _append_until_gone(service: Service, token: str, name: str, batch: int, sent: list[Sent],
                       stop: threading.Event) -> None:
    with service.client(token) as http:
        n = 0
        while not stop.is_set():
            events = [{"subject_id": f"{name}-{n}-{k % 5}", "purpose": PURPOSE,
                       "action": "grant", "event_id": f"{name}-{n}-{k}",
                       "effective_at": "2026-01-05T09:00:00Z"} for k in range(batch)]
            request = Sent([e["event_id"] for e in events])
            sent.append(request)
            n += 1
            try:
                answer = http.post("/v1/consent/events", json=events if batch > 1 else events[0])
            except httpx.TransportError:
                return  # the server is gone
            if answer.status_code != 201:
                raise AssertionError(f"{answer.status_code}: {answer.text}")
            body = answer.json()
            assert sorted(e["event_id"] for e in body["events"]) == sorted(request.ids)
            request.acknowledged = True


def test_sigkill_mid_load_loses_no_acknowledged_event_and_leaves_no_half_batch(
        service_home: Path) -> None:
    service = start(service_home)
    try:
        token = service.token("consent-writer", "cmp-crash")
        stop = threading.Event()
        errors: list[str] = []
        sent: list[list[Sent]] = [[] for _ in range(4)]
        shapes = [("one-a", 1), ("one-b", 1), ("many-a", BATCH), ("many-b", BATCH)]
        threads = [threading.Thread(target=_client,
                                    args=(service, token, name, batch, sent[i], stop, errors))
                   for i, (name, batch) in enumerate(shapes)]
        for t in threads:
            t.start()
        time.sleep(KILL_AFTER_S)
        os.killpg(service.proc.pid, signal.SIGKILL)
        assert service.proc.wait(30) == -signal.SIGKILL
        stop.set()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
    finally:
        service.stop()
    requests = [r for mine in sent for r in mine]
    acknowledged = [r for r in requests if r.acknowledged]
    assert acknowledged and len(acknowledged) < len(requests)  # killed mid-load
    for shape, mine in zip(shapes, sent, strict=True):
        assert any(r.acknowledged for r in mine), f"{shape[0]} got no answer before the kill"

    ledger = Ledger(ledger_path(service_home))
    head = ledger.verify()
    stored = [e.event_id for e in ledger.events()]
    assert len(stored) == len(set(stored)) == head.seq
    present = set(stored)
    lost = [i for r in acknowledged for i in r.ids if i not in present]
    assert lost == []
    half = [r.ids[0] for r in requests if 0 < sum(i in present for i in r.ids) < len(r.ids)]
    assert half == []
    assert present == {i for r in requests if r.ids[0] in present for i in r.ids}

    info = service_home / "service.json"
    assert json.loads(info.read_text())["pid"] == service.proc.pid  # left behind, stale
    again = start(service_home)
    try:
        assert json.loads(info.read_text())["pid"] == again.proc.pid
        with again.as_role("consent-writer") as http:
            answer = http.post("/v1/consent/events", json={
                "subject_id": "after-restart", "purpose": PURPOSE, "action": "grant",
                "event_id": "after-restart-1"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["events"][0]["seq"] == head.seq + 1
        with again.as_role("auditor") as http:
            verified = http.get("/v1/consent/verify")
            access = http.get("/v1/access-log/verify")
        assert verified.status_code == 200 and verified.json()["head"]["seq"] == head.seq + 1
        assert access.status_code == 200, access.text
    finally:
        again.stop()
    assert not info.exists()
