"""Bad input on a real server: every case is a 4xx JSON error naming the field, nothing is
appended (the chain head does not move), and the service answers afterwards; a flood of
bad tokens is refused, answered and logged, every one of them.

One server for the module, with small limits written into its consentgen.toml so that
the oversize cases stay small.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.pipelines.cli.console import ok
from tests.pipelines.service.server import Service, serving

PURPOSE = "synthetic-training"
MAX_EVENTS = 5
MAX_BODY = 65_536
GOOD = {"subject_id": "s1", "purpose": PURPOSE, "action": "grant",
        "effective_at": "2026-01-05T09:00:00Z"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("bad-input") / "home"
    ok(home, "init")
    toml = home / "consentgen.toml"
    toml.write_text(toml.read_text().replace("\n[service]\n", "\n[service]\n"
                                             f"max_events_per_request = {MAX_EVENTS}\n"
                                             f"max_body_bytes = {MAX_BODY}\n", 1))
    with serving(home) as running:
        yield running


def event(**override: Any) -> dict[str, Any]:
    return {**GOOD, **override}


def raw(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


def streamed(size: int) -> Iterator[bytes]:
    chunk = b" " * 4096
    for _ in range(size // len(chunk) + 1):
        yield chunk


POST = "/v1/consent/events"
ELIGIBLE = "/v1/consent/eligible"
# (case, method, path, request keywords, status, field)
CASES: list[tuple[str, str, str, dict[str, Any], int, str | None]] = [
    ("malformed JSON", "POST", POST, raw('{"subject_id": "s1",'), 400, "body"),
    ("empty body", "POST", POST, raw(""), 400, "body"),
    ("a JSON string", "POST", POST, {"json": "grant s1"}, 422, "body"),
    ("a JSON number", "POST", POST, {"json": 5}, 422, "body"),
    ("JSON null", "POST", POST, raw("null"), 422, "body"),
    ("subject_id a number", "POST", POST, {"json": event(subject_id=5)}, 422, "subject_id"),
    ("action true", "POST", POST, {"json": event(action=True)}, 422, "action"),
    ("effective_at a number", "POST", POST, {"json": event(effective_at=123)}, 422,
     "effective_at"),
    ("a float", "POST", POST, raw('{"subject_id": "s1", "purpose": "synthetic-training", '
                                  '"action": "grant", "effective_at": 1.5e9}'), 422,
     "effective_at"),
    ("a float in a list item", "POST", POST,
     raw("[" + json.dumps(GOOD) + ', {"subject_id": "s2", "expires_at": 2.0}]'), 422,
     "[1].expires_at"),
    ("a naive time", "POST", POST, {"json": event(effective_at="2026-01-05T09:00:00")}, 422,
     "effective_at"),
    ("year 0999", "POST", POST, {"json": event(effective_at="0999-06-01T00:00:00Z")}, 422,
     "effective_at"),
    ("past datetime.max", "POST", POST,
     {"json": event(effective_at="9999-12-31T23:59:59-01:00")}, 422, "effective_at"),
    ("expiry out of range", "POST", POST, {"json": event(expires_at="3000-01-01T00:00:00Z")},
     422, "expires_at"),
    ("unknown action", "POST", POST, {"json": event(action="maybe")}, 422, "action"),
    ("undeclared purpose", "POST", POST, {"json": event(purpose="marketing")}, 422, "purpose"),
    ("undeclared purpose in a list", "POST", POST,
     {"json": [GOOD, GOOD, event(purpose="marketing")]}, 422, "[2].purpose"),
    ("invalid purpose pattern", "POST", POST, {"json": event(purpose="Synthetic Training!")},
     422, "purpose"),
    ("an unknown field", "POST", POST, {"json": event(colour="red")}, 422, "colour"),
    ("a missing field", "POST", POST, {"json": {"subject_id": "s1", "purpose": PURPOSE}}, 422,
     "action"),
    ("an empty list", "POST", POST, {"json": []}, 422, "body"),
    ("a list item not an object", "POST", POST, {"json": [GOOD, 7]}, 422, "[1]"),
    ("a bad time at [3]", "POST", POST,
     {"json": [GOOD, GOOD, GOOD, event(effective_at="2026-01-05T09:00:00")]}, 422,
     "[3].effective_at"),
    ("a list over max_events_per_request", "POST", POST, {"json": [GOOD] * (MAX_EVENTS + 1)},
     413, "body"),
    ("a body over max_body_bytes", "POST", POST,
     raw(json.dumps(event(source="x" * (MAX_BODY + 10)))), 413, "body"),
    ("a streamed body over max_body_bytes", "POST", POST,
     {"content": streamed(MAX_BODY * 2), "headers": {"content-type": "application/json"}},
     413, "body"),
    ("a U+202E subject prefix", "POST", POST, {"json": event(subject_id="\u202es1")}, 422,
     "subject_id"),
    ("only U+200B", "POST", POST, {"json": event(subject_id="\u200b")}, 422, "subject_id"),
    ("a control character", "POST", POST, {"json": event(subject_id="s1\n")}, 422,
     "subject_id"),
    ("deep nesting", "POST", POST, raw("[" * 20_000 + "]" * 20_000), 400, "body"),
    ("naive at", "GET", ELIGIBLE, {"params": {"purpose": PURPOSE, "at": "2026-01-01T00:00:00"}},
     422, "at"),
    ("at out of range", "GET", ELIGIBLE,
     {"params": {"purpose": PURPOSE, "at": "0999-01-01T00:00:00Z"}}, 422, "at"),
    ("bad purpose in /eligible", "GET", ELIGIBLE, {"params": {"purpose": "BAD purpose"}}, 422,
     "purpose"),
    ("no purpose in /eligible", "GET", ELIGIBLE, {}, 422, "purpose"),
    ("bad after_seq", "GET", "/v1/consent/events", {"params": {"after_seq": "x"}}, 422,
     "after_seq"),
    ("negative after_seq", "GET", "/v1/consent/events", {"params": {"after_seq": -1}}, 422,
     "after_seq"),
    ("limit too large", "GET", "/v1/consent/events", {"params": {"limit": 10**9}}, 422, "limit"),
    ("a bidi subject in the path", "GET", "/v1/consent/subjects/%E2%80%AEs1",
     {"params": {"purpose": PURPOSE}}, 422, "subject_id"),
    ("naive since", "GET", "/v1/access-log", {"params": {"since": "2026-01-01T00:00"}}, 422,
     "since"),
    ("a token body that is not JSON", "POST", "/v1/tokens", raw("{name"), 400, "body"),
    ("a token of role owner", "POST", "/v1/tokens", {"json": {"name": "x", "role": "owner"}},
     422, "role"),
    ("an unknown route", "GET", "/v1/nothing-here", {}, 404, "path"),
    ("a wrong method", "PUT", POST, {"json": GOOD}, 405, "method"),
]


def head(service: Service) -> dict[str, Any]:
    with service.owner() as http:
        return http.get("/v1/consent/head").json()


@pytest.mark.parametrize(("case", "method", "path", "kwargs", "status", "field"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_is_a_4xx_naming_the_field_and_appends_nothing(
        service: Service, case: str, method: str, path: str, kwargs: dict[str, Any],
        status: int, field: str | None) -> None:
    before = head(service)
    with service.owner() as http:
        answer = http.request(method, path, **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert set(error) >= {"code", "message", "field"}
    assert error["field"] == field, error
    assert error["message"] and "\n" not in error["message"] and len(error["message"]) < 600
    assert "Traceback" not in error["message"]
    assert head(service) == before, case
    with service.client() as http:
        assert http.get("/v1/health").status_code == 200


def test_a_good_event_moves_the_head(service: Service) -> None:
    """The check above can fail: an accepted event does move it."""
    before = head(service)
    with service.as_role("consent-writer") as http:
        assert http.post(POST, json=event(subject_id="good-1")).status_code == 201
    assert head(service)["seq"] == before["seq"] + 1


def test_a_flood_of_bad_tokens_is_refused_logged_and_survived(service: Service) -> None:
    with service.as_role("auditor") as http:
        start = http.get("/v1/access-log/verify").json()["head"]["seq"]
    ledger_before = head(service)
    per_client, clients = 250, 8

    def flood(i: int) -> list[int]:
        with httpx.Client(base_url=service.url, timeout=60.0) as http:
            return [http.post(POST, json=GOOD, headers={
                "Authorization": f"Bearer cg_forged-{i}-{n}"}).status_code
                for n in range(per_client)]

    with ThreadPoolExecutor(clients) as pool:
        statuses = [s for batch in pool.map(flood, range(clients)) for s in batch]
    assert len(statuses) == per_client * clients
    assert set(statuses) == {401}
    with service.client() as http:
        assert http.get("/v1/health").status_code == 200
    with service.as_role("auditor") as http:
        entries, after = [], start
        while after is not None:
            page = http.get("/v1/access-log", params={"after_seq": after, "limit": 1000}).json()
            entries += page["entries"]
            after = page["next_after_seq"]
        intact = http.get("/v1/access-log/verify")
    refused = [e for e in entries if e["status"] == 401 and e["path"] == POST]
    assert len(refused) == per_client * clients
    assert {e["token"] for e in refused} == {"-"}  # a presented secret is never logged
    assert intact.status_code == 200
    assert head(service) == ledger_before  # nothing appended by 2,000 refused posts
