"""Signed CMP webhooks on a real server: signature, replay window, mapping, roles.

One server for the module (its webhook tables written into the home's consentgen.toml
before it starts, the secrets in its environment and a file); each test uses its own
subjects. The signature is computed here with hmac, as a CMP would, not with our code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.pipelines.cli.console import ok
from tests.pipelines.service.server import Service, serving

PURPOSE = "synthetic-training"
CMP_SECRET = "cmp-secret-0123456789abcdef"
ONETRUST_SECRET = "onetrust-secret-fedcba9876543210"
TABLES = f"""
[service.webhooks.cmp]
secret_env = "CG_TEST_CMP_SECRET"
events = "events"

[service.webhooks.onetrust]
secret_file = "secrets/onetrust.key"
events = "consents"
fields = {{ subject_id = "dataSubject.id", purpose = "purpose.id", action = "status", effective_at = "timestamp", event_id = "receipt" }}
actions = {{ ACTIVE = "grant", WITHDRAWN = "revoke" }}
purposes = {{ "9f1c-training" = "{PURPOSE}" }}

[service.webhooks.unsigned]
events = "events"
"""


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("webhooks") / "home"
    ok(home, "init")
    with (home / "consentgen.toml").open("a") as toml:
        toml.write(TABLES)
    (home / "secrets").mkdir()
    (home / "secrets" / "onetrust.key").write_text(ONETRUST_SECRET + "\n")
    with serving(home, env={"CG_TEST_CMP_SECRET": CMP_SECRET}) as running:
        yield running


def signed(secret: str, body: bytes, at: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Consentgen-Timestamp": stamp, "X-Consentgen-Signature": f"sha256={digest}",
            "Content-Type": "application/json"}


def body_of(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def grant(subject: str, **extra: Any) -> dict[str, Any]:
    return {"subject_id": subject, "purpose": PURPOSE, "action": "grant", **extra}


def call(hooks: Service, name: str, body: bytes, headers: dict[str, str],
         role: str = "consent-writer") -> httpx.Response:
    with hooks.as_role(role) as http:
        return http.post(f"/v1/webhooks/{name}", content=body, headers=headers)


def ledger(hooks: Service, subject: str | None = None) -> list[dict[str, Any]]:
    params = {"limit": 10_000, **({"subject_id": subject} if subject else {})}
    with hooks.as_role("auditor") as http:
        answer = http.get("/v1/consent/events", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


def head(hooks: Service) -> int:
    with hooks.as_role("auditor") as http:
        return http.get("/v1/consent/head").json()["seq"]


def error(answer: httpx.Response) -> tuple[int, str, str | None]:
    found = answer.json()["error"]
    return answer.status_code, found["code"], found["field"]


def test_a_signed_call_appends_its_events(hooks: Service) -> None:
    body = body_of({"events": [grant("good-1", event_id="cmp-good-1",
                                     effective_at="2026-01-05T09:00:00Z"), grant("good-2")]})
    answer = call(hooks, "cmp", body, signed(CMP_SECRET, body))
    assert answer.status_code == 201, answer.text
    assert answer.json()["appended"] == 2
    stored = ledger(hooks, "good-1") + ledger(hooks, "good-2")
    assert [(e["subject_id"], e["action"], e["purpose"]) for e in stored] == [
        ("good-1", "grant", PURPOSE), ("good-2", "grant", PURPOSE)]
    assert stored[0]["event_id"] == "cmp-good-1"
    assert {(e["actor"], e["source"]) for e in stored} == {("webhook:cmp", "webhook:cmp")}
    with hooks.as_role("auditor") as http:
        entries = http.get("/v1/access-log", params={"limit": 10_000}).json()["entries"]
    assert ("test-consent-writer", "/v1/webhooks/cmp", 201, ["good-1", "good-2"]) in [
        (e["token"], e["path"], e["status"], e["subjects"]) for e in entries]


def test_a_bad_signature_is_401_and_appends_nothing(hooks: Service) -> None:
    body = body_of({"events": [grant("forged-1")]})
    before = head(hooks)
    wrong_key = call(hooks, "cmp", body, signed("not-the-secret-at-all-0000", body))
    other_body = call(hooks, "cmp", body, signed(CMP_SECRET, body_of({"events": []})))
    headers = signed(CMP_SECRET, body)
    re_dated = call(hooks, "cmp", body, {**headers, "X-Consentgen-Timestamp":
                                         str(int(headers["X-Consentgen-Timestamp"]) - 5)})
    other_hooks_key = call(hooks, "cmp", body, signed(ONETRUST_SECRET, body))
    for answer in (wrong_key, other_body, re_dated, other_hooks_key):
        assert error(answer) == (401, "bad_signature", "X-Consentgen-Signature"), answer.text
    assert head(hooks) == before
    assert ledger(hooks, "forged-1") == []


def test_missing_or_malformed_signature_headers_are_401(hooks: Service) -> None:
    body = body_of({"events": [grant("headless-1")]})
    headers = signed(CMP_SECRET, body)
    no_stamp = {k: v for k, v in headers.items() if k != "X-Consentgen-Timestamp"}
    no_sig = {k: v for k, v in headers.items() if k != "X-Consentgen-Signature"}
    cases = {
        "X-Consentgen-Timestamp": [no_stamp, {**headers, "X-Consentgen-Timestamp": "soon"},
                                   {**headers, "X-Consentgen-Timestamp": "1.5e9"}],
        "X-Consentgen-Signature": [no_sig, {**headers, "X-Consentgen-Signature": "md5=abc"},
                                   {**headers, "X-Consentgen-Signature":
                                    headers["X-Consentgen-Signature"].removeprefix("sha256=")}],
    }
    for header, variants in cases.items():
        for variant in variants:
            assert error(call(hooks, "cmp", body, variant)) == (401, "bad_signature", header)
    assert ledger(hooks, "headless-1") == []


def test_a_stale_or_future_timestamp_is_refused_as_a_replay(hooks: Service) -> None:
    body = body_of({"events": [grant("stale-1")]})
    now = int(time.time())
    stale = call(hooks, "cmp", body, signed(CMP_SECRET, body, now - 301))
    future = call(hooks, "cmp", body, signed(CMP_SECRET, body, now + 400))
    for answer in (stale, future):
        assert error(answer) == (401, "replayed", "X-Consentgen-Timestamp"), answer.text
        assert "stale timestamp" in answer.json()["error"]["message"]
    assert "old" in stale.json()["error"]["message"]
    assert "future" in future.json()["error"]["message"]
    assert ledger(hooks, "stale-1") == []
    inside = call(hooks, "cmp", body, signed(CMP_SECRET, body, now - 200))
    assert inside.status_code == 201 and inside.json()["appended"] == 1


def test_a_replay_inside_the_window_is_idempotent(hooks: Service) -> None:
    # neither an event id nor an effective time: both come from the signed request
    body = body_of({"events": [grant("replay-1"), grant("replay-2", event_id="cmp-replay-2")]})
    headers = signed(CMP_SECRET, body)
    first = call(hooks, "cmp", body, headers)
    again = call(hooks, "cmp", body, headers)
    assert first.status_code == 201 and first.json()["appended"] == 2
    assert again.status_code == 201, again.text
    assert (again.json()["appended"], again.json()["already_present"]) == (0, 2)
    assert [e["seq"] for e in again.json()["events"]] == [e["seq"] for e in first.json()["events"]]
    stored = ledger(hooks, "replay-1")
    assert len(stored) == 1 and len(ledger(hooks, "replay-2")) == 1
    signed_at = int(headers["X-Consentgen-Timestamp"])
    assert stored[0]["effective_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(signed_at))


def test_a_nested_payload_is_mapped_and_revokes_through_the_webhook(hooks: Service) -> None:
    def consent(status: str, at: str, **extra: Any) -> dict[str, Any]:
        return {"dataSubject": {"id": "ot-1", "email": "x@example.org"},
                "purpose": {"id": "9f1c-training", "version": 2.0}, "status": status,
                "timestamp": at, **extra}

    granted = body_of({"consents": [consent("ACTIVE", "2026-01-05T09:00:00Z", receipt="r-1")]})
    answer = call(hooks, "onetrust", granted, signed(ONETRUST_SECRET, granted))
    assert answer.status_code == 201, answer.text
    with hooks.as_role("consent-officer") as http:
        assert http.get("/v1/consent/subjects/ot-1", params={"purpose": PURPOSE}).json()[
            "granted"] is True
    revoked = body_of({"consents": [consent("WITHDRAWN", "2026-02-01T10:00:00Z")]})
    answer = call(hooks, "onetrust", revoked, signed(ONETRUST_SECRET, revoked))
    assert answer.status_code == 201, answer.text
    with hooks.as_role("consent-officer") as http:
        state = http.get("/v1/consent/subjects/ot-1", params={"purpose": PURPOSE}).json()
    assert state["granted"] is False and state["deciding_event"]["action"] == "revoke"
    stored = ledger(hooks, "ot-1")
    assert [(e["action"], e["purpose"], e["effective_at"], e["source"]) for e in stored] == [
        ("grant", PURPOSE, "2026-01-05T09:00:00Z", "webhook:onetrust"),
        ("revoke", PURPOSE, "2026-02-01T10:00:00Z", "webhook:onetrust")]
    assert stored[0]["event_id"] == "r-1"


def test_a_bad_mapped_event_is_422_naming_it_and_appends_nothing(hooks: Service) -> None:
    before = head(hooks)
    cases = [
        ({"consents": [{"dataSubject": {"id": "bad-1"}, "purpose": {"id": PURPOSE},
                        "status": "ACTIVE"},
                       {"dataSubject": {}, "purpose": {"id": PURPOSE}, "status": "ACTIVE"}]},
         "events[1].subject_id"),
        ({"consents": [{"dataSubject": {"id": "bad-2"}, "purpose": {"id": PURPOSE},
                        "status": "PENDING"}]}, "events[0].action"),
        ({"consents": [{"dataSubject": {"id": "bad-3"}, "purpose": {"id": "unheard-of"},
                        "status": "ACTIVE"}]}, "events[0].purpose"),
        ({"consents": [{"dataSubject": {"id": "bad-4"}, "purpose": {"id": PURPOSE},
                        "status": "ACTIVE", "timestamp": "2026-01-05 09:00"}]},
         "events[0].effective_at"),
        ({"consents": ["bad-5"]}, "events[0]"),
        ({"other": []}, "events"),
    ]
    for payload, field in cases:
        body = body_of(payload)
        answer = call(hooks, "onetrust", body, signed(ONETRUST_SECRET, body))
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["field"] == field, answer.text
        assert answer.json()["error"]["message"].startswith(field)
    assert head(hooks) == before
    assert ledger(hooks, "bad-1") == []


def test_malformed_json_is_400(hooks: Service) -> None:
    body = b'{"events": [{"subject_id": "json-1",'
    assert error(call(hooks, "cmp", body, signed(CMP_SECRET, body))) == (
        400, "malformed_json", "body")
    not_utf8 = b'{"events": "\xff"}'
    assert error(call(hooks, "cmp", not_utf8, signed(CMP_SECRET, not_utf8)))[:2] == (
        400, "malformed_json")


def test_roles_names_and_secrets(hooks: Service) -> None:
    body = body_of({"events": [grant("role-1")]})
    headers = signed(CMP_SECRET, body)
    with hooks.client() as http:
        assert http.post("/v1/webhooks/cmp", content=body, headers=headers).status_code == 401
    assert error(call(hooks, "cmp", body, headers, role="reader"))[:2] == (403, "forbidden")
    assert error(call(hooks, "cmp", body, headers, role="data-engineer"))[0] == 403
    assert error(call(hooks, "nosuch", body, headers)) == (404, "unknown_webhook", "name")
    unsigned = call(hooks, "unsigned", body, headers)
    assert error(unsigned) == (503, "no_secret", None)
    assert "webhook unsigned has no secret configured" in unsigned.json()["error"]["message"]
    assert ledger(hooks, "role-1") == []
    officer = call(hooks, "cmp", body, headers, role="consent-officer")
    assert officer.status_code == 201 and officer.json()["appended"] == 1


def test_a_webhook_added_to_the_file_works_without_a_restart(hooks: Service) -> None:
    body = body_of({"who": 42, "consent": "yes"})
    headers = signed(CMP_SECRET, body)
    assert error(call(hooks, "later", body, headers))[0] == 404
    with (hooks.home / "consentgen.toml").open("a") as toml:
        toml.write('\n[service.webhooks.later]\nsecret_env = "CG_TEST_CMP_SECRET"\n'
                   f'purpose = "{PURPOSE}"\nfields = {{ subject_id = "who", action = "consent" }}'
                   '\nactions = { yes = "grant", no = "revoke" }\n')
    answer = call(hooks, "later", body, headers)
    assert answer.status_code == 201, answer.text
    assert [e["action"] for e in ledger(hooks, "42")] == ["grant"]
    with (hooks.home / "consentgen.toml").open("a") as toml:
        toml.write('\n[service.webhooks.broken]\nsecret_env = "CG_TEST_CMP_SECRET"\n'
                   'actions = { yes = "maybe" }\n')
    broken = call(hooks, "broken", body, headers)
    assert error(broken)[:2] == (503, "webhook_misconfigured")
    assert "maybe" in broken.json()["error"]["message"]


def test_the_openapi_names_the_webhook_and_its_headers(hooks: Service) -> None:
    with hooks.client() as http:
        schema = http.get("/openapi.json").json()
    operation = schema["paths"]["/v1/webhooks/{name}"]["post"]
    assert {"X-Consentgen-Timestamp", "X-Consentgen-Signature"} <= {
        p["name"] for p in operation["parameters"]}
