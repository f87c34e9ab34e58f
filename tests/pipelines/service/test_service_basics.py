"""The service's core path on a real server: append, read, verify, the access log."""

from __future__ import annotations

from tests.pipelines.service.server import Service

PURPOSE = "synthetic-training"
GRANT = {"subject_id": "s1", "purpose": PURPOSE, "action": "grant",
         "event_id": "cmp-1", "effective_at": "2026-01-05T09:00:00Z"}


def test_health_needs_no_token(service: Service) -> None:
    with service.client() as http:
        answer = http.get("/v1/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_append_is_idempotent_and_a_changed_retry_conflicts(service: Service) -> None:
    with service.as_role("consent-writer") as http:
        first = http.post("/v1/consent/events", json=GRANT)
        again = http.post("/v1/consent/events", json=GRANT)
        changed = http.post("/v1/consent/events", json={**GRANT, "subject_id": "s2"})
    assert first.status_code == 201 and first.json()["appended"] == 1
    assert again.status_code == 201
    assert again.json()["appended"] == 0 and again.json()["already_present"] == 1
    assert again.json()["events"][0]["seq"] == first.json()["events"][0]["seq"]
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "event_conflict"
    with service.as_role("auditor") as http:
        log = http.get("/v1/consent/events").json()["events"]
    assert [e["event_id"] for e in log] == ["cmp-1"]


def test_state_eligible_and_verify(service: Service) -> None:
    with service.as_role("consent-officer") as http:
        assert http.post("/v1/consent/events", json=[GRANT, {
            **GRANT, "event_id": "cmp-2", "subject_id": "s2"}]).status_code == 201
        state = http.get("/v1/consent/subjects/s1", params={"purpose": PURPOSE}).json()
        eligible = http.get("/v1/consent/eligible", params={"purpose": PURPOSE}).json()
        before = http.get("/v1/consent/eligible",
                          params={"purpose": PURPOSE, "at": "2026-01-01T00:00:00Z"}).json()
        verified = http.get("/v1/consent/verify")
    assert state["granted"] is True and state["deciding_event"]["event_id"] == "cmp-1"
    assert eligible == ["s1", "s2"]
    assert before == []
    assert verified.status_code == 200 and verified.json()["head"]["seq"] == 2


def test_every_request_is_in_the_access_log_with_its_subjects(service: Service) -> None:
    writer = service.token("consent-writer", "cmp-test")
    with service.client(writer) as http:
        http.post("/v1/consent/events", json=GRANT)
        http.get("/v1/consent/eligible", params={"purpose": PURPOSE})  # 403: a writer may not
    with service.client() as http:
        http.get("/v1/consent/eligible", params={"purpose": PURPOSE})  # 401
    with service.as_role("auditor") as http:
        entries = http.get("/v1/access-log", params={"limit": 1000}).json()["entries"]
        intact = http.get("/v1/access-log/verify")
    mine = [(e["token"], e["method"], e["path"].split("?")[0], e["status"], e["subjects"])
            for e in entries if e["token"] in ("cmp-test", "-") and "/health" not in e["path"]]
    assert ("cmp-test", "POST", "/v1/consent/events", 201, ["s1"]) in mine
    assert ("cmp-test", "GET", "/v1/consent/eligible", 403, []) in mine
    assert ("-", "GET", "/v1/consent/eligible", 401, []) in mine
    assert intact.status_code == 200


def test_the_access_log_names_the_socket_peer_not_a_forwarded_for_header(service: Service) -> None:
    with service.as_role("consent-writer") as http:
        assert http.post("/v1/consent/events", json=GRANT,
                         headers={"X-Forwarded-For": "6.6.6.6"}).status_code == 201
    with service.as_role("auditor") as http:
        entries = http.get("/v1/access-log").json()["entries"]
    posts = [e for e in entries if e["method"] == "POST" and e["path"] == "/v1/consent/events"]
    assert [e["client"] for e in posts] == ["127.0.0.1"]
