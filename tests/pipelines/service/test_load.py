"""Eight concurrent clients x 500 events against a real server (issue 13, "Tests"): every
event present once, the chain intact through the API and in the file after the stop,
and one access-log entry per request in a chain that verifies."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from consent import Ledger
from consentgen.home import ledger_path
from tests.pipelines.service.server import Service, serving

PURPOSE = "synthetic-training"
CLIENTS = 8
EACH = 500


def _client(service: Service, token: str, n: int, ids: list[str], errors: list[str]) -> None:
    with service.client(token) as http:
        for i in range(EACH):
            event_id = f"load-{n}-{i}"
            answer = http.post("/v1/consent/events", json={
                "subject_id": f"s{n}-{i % 50}", "purpose": PURPOSE,
                "action": "revoke" if i % 7 == 3 else "grant", "event_id": event_id,
                "effective_at": "2026-01-05T09:00:00Z"})
            if answer.status_code != 201 or answer.json()["appended"] != 1:
                errors.append(f"{event_id}: {answer.status_code} {answer.text[:200]}")
            else:
                ids.append(event_id)


def _paged(http: httpx.Client, path: str, key: str) -> list[dict]:
    """Every item of a paged endpoint (`after_seq` cursor, `next_after_seq` answer)."""
    found, after = [], 0
    while True:
        page = http.get(path, params={"after_seq": after, "limit": 5000})
        assert page.status_code == 200, page.text
        found += page.json()[key]
        if page.json()["next_after_seq"] is None:
            return found
        after = page.json()["next_after_seq"]


def test_eight_clients_times_500_events_all_present_and_chained(service_home: Path) -> None:
    with serving(service_home) as service:
        token = service.token("consent-writer", "cmp-load")
        ids: list[list[str]] = [[] for _ in range(CLIENTS)]
        errors: list[str] = []
        threads = [threading.Thread(target=_client, args=(service, token, n, ids[n], errors))
                   for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert errors == []
        sent = {i for mine in ids for i in mine}
        assert len(sent) == CLIENTS * EACH
        with service.as_role("auditor") as http:
            events = _paged(http, "/v1/consent/events", "events")
            verified = http.get("/v1/consent/verify")
            entries = _paged(http, "/v1/access-log", "entries")
            access_ok = http.get("/v1/access-log/verify")
        assert len(events) == CLIENTS * EACH
        assert {e["event_id"] for e in events} == sent
        assert [e["seq"] for e in events] == list(range(1, CLIENTS * EACH + 1))
        for n in range(CLIENTS):  # each client's events in the order it sent them
            mine = [e["event_id"] for e in events if e["event_id"].startswith(f"load-{n}-")]
            assert mine == ids[n]
        assert verified.status_code == 200, verified.text
        assert verified.json()["head"]["seq"] == CLIENTS * EACH
        assert access_ok.status_code == 200, access_ok.text
        appends = [e for e in entries if e["token"] == "cmp-load" and e["method"] == "POST"]
        assert len(appends) == CLIENTS * EACH and {e["status"] for e in appends} == {201}
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    ledger = Ledger(ledger_path(service_home))
    assert ledger.verify().seq == CLIENTS * EACH
    assert {e.event_id for e in ledger.events()} == sent
