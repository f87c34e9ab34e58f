"""ISO/IEC TS 27560 export and import through a real server: the round trip between two
services, every refusal naming its item and field with nothing appended, and an imported
revoke or expiry withdrawing at once."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from consent.state import EXPIRY_SOURCE, OPERATOR_WITHDRAWAL_SOURCE
from tests.pipelines.cli.console import ok
from tests.pipelines.service.server import Service, serving
from tests.pipelines.steps.published import VERSIONS, publish_rows

PURPOSE = "synthetic-training"
AT = "2026-06-01T00:00:00Z"
NDJSON = {"content-type": "application/x-ndjson"}
SCHEMA = "https://w3id.org/dpv/schema/iso-27560#record"


def event(subject: str, action: str, day: int, **extra: object) -> dict:
    return {"subject_id": subject, "purpose": PURPOSE, "action": action,
            "effective_at": f"2026-01-{day:02d}T00:00:00Z", **extra}


def record(subject: str, *entries: tuple[str, str], **extra: object) -> dict:
    return {"schema_version": SCHEMA, "pii_principal_id": subject, "purpose": PURPOSE,
            "events": [{"consent_status": f"dpv:{status}", "effective_at": at} for status, at in entries],
            **extra}


def comparable(records: list[dict]) -> list[dict]:
    out = copy.deepcopy(records)
    for r in out:
        r.pop("ledger_head")
        for e in r["events"]:
            for name in ("seq", "recorded_at", "hash"):
                e.pop(name)
    return out


def head(service: Service) -> int:
    with service.as_role("auditor") as http:
        return http.get("/v1/consent/head").json()["seq"]


def fill(service: Service) -> None:
    """Grants, a withdrawal, an operator's revoke, a future grant and a stated expiry."""
    with service.as_role("consent-writer") as http:
        answer = http.post("/v1/consent/events", json=[
            event("s1", "grant", 1, event_id="e1", actor="cmp"), event("s2", "grant", 1),
            event("s2", "revoke", 5, source="receipt-9"), event("s3", "grant", 2),
            event("s3", "revoke", 6, source=OPERATOR_WITHDRAWAL_SOURCE),
            event("s4", "grant", 2, expires_at="2026-02-01T00:00:00Z"),
            {**event("s5", "grant", 1), "effective_at": "2027-01-01T00:00:00Z"}])
        assert answer.status_code == 201, answer.text
        answer = http.post("/v1/consent/import", json=[record(
            "s6", ("ConsentGiven", "2026-01-01T00:00:00Z"), ("ConsentExpired", "2026-03-01T00:00:00Z"))])
        assert answer.status_code == 201, answer.text


def test_export_in_both_formats(service: Service) -> None:
    fill(service)
    with service.as_role("auditor") as http:
        records = http.get("/v1/consent/export", params={"format": "iso27560", "at": AT})
        lines = http.get("/v1/consent/export", params={"format": "jsonl"})
        before = http.get("/v1/consent/export", params={"at": "2025-01-01T00:00:00Z"}).json()
        xml = http.get("/v1/consent/export", params={"format": "xml"})
        naive = http.get("/v1/consent/export", params={"at": "2026-01-01T00:00:00"})
    assert records.status_code == 200 and records.headers["content-type"].startswith("application/ld+json")
    assert {r["pii_principal_id"]: r["consent_status"] for r in records.json()} == {
        "s1": "dpv:ConsentGiven", "s2": "dpv:ConsentWithdrawn", "s3": "dpv:ConsentRevoked",
        "s4": "dpv:ConsentExpired", "s5": "dpv:ConsentUnknown", "s6": "dpv:ConsentExpired"}
    s6 = next(r for r in records.json() if r["pii_principal_id"] == "s6")
    assert [(e["consent_status"], e["source"]) for e in s6["events"]] == [
        ("dpv:ConsentGiven", ""), ("dpv:ConsentExpired", EXPIRY_SOURCE)]
    assert all(r["@type"] == "dpv:ConsentRecord" and r["status_at"] == AT for r in records.json())
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in lines.text.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, 10)) and events[0]["event_id"] == "e1"
    assert {r["consent_status"] for r in before} == {"dpv:ConsentUnknown"}
    assert xml.status_code == 422 and xml.json()["error"]["field"] == "format"
    assert naive.status_code == 422 and naive.json()["error"]["field"] == "at"
    with service.as_role("consent-writer") as http:
        assert http.get("/v1/consent/export").status_code == 403
    with service.as_role("auditor") as http:
        entries = http.get("/v1/access-log", params={"limit": 1000}).json()["entries"]
    logged = [e["subjects"] for e in entries if e["path"].startswith("/v1/consent/export")
              and e["status"] == 200]
    assert [f"s{i}" for i in range(1, 7)] in logged


def test_our_export_round_trips_through_another_service(service: Service, tmp_path: Path) -> None:
    fill(service)
    with service.as_role("auditor") as http:
        first = http.get("/v1/consent/export", params={"at": AT}).json()
    other_home = tmp_path / "other"
    ok(other_home, "init")
    with serving(other_home) as other:
        with other.as_role("consent-writer") as http:
            imported = http.post("/v1/consent/import", json=first)
            again = http.post("/v1/consent/import", json=first)
        with other.as_role("auditor") as http:
            second = http.get("/v1/consent/export", params={"at": AT}).json()
            verified = http.get("/v1/consent/verify")
    assert imported.status_code == 201, imported.text
    assert imported.json()["appended"] == 9
    assert again.json()["appended"] == 0 and again.json()["already_present"] == 9
    assert comparable(second) == comparable(first)
    assert second[0]["ledger_head"]["seq"] == 9 and verified.status_code == 200


def test_ndjson_of_events_and_records_imports_as_one_request(service: Service) -> None:
    body = (json.dumps(event("n1", "grant", 1)) + "\n\n"
            + json.dumps(record("n2", ("ConsentGiven", "2026-01-01T00:00:00Z"),
                                ("ConsentWithdrawn", "2026-01-09T00:00:00Z"))) + "\n")
    with service.as_role("consent-officer") as http:
        answer = http.post("/v1/consent/import", content=body.encode(), headers=NDJSON)
        eligible = http.get("/v1/consent/eligible", params={"purpose": PURPOSE}).json()
    assert answer.status_code == 201, answer.text
    assert answer.json()["appended"] == 3 and answer.json()["head"]["seq"] == 3
    assert eligible == ["n1"]


def test_a_refused_import_names_the_item_and_field_and_appends_nothing(service: Service) -> None:
    with service.as_role("consent-writer") as http:
        assert http.post("/v1/consent/events", json=event("taken", "grant", 1,
                                                          event_id="x-1")).status_code == 201
    good = record("r1", ("ConsentGiven", "2026-01-01T00:00:00Z"))
    cases = [
        ([good, good, record("r3", ("ConsentDenied", "2026-01-01T00:00:00Z"))], None, 422,
         "[2].events[0].consent_status", "is no grant, withdrawal, revocation or expiry"),
        ([good, {**good, "consent_status": "dpv:Maybe"}], None, 422, "[1].consent_status",
         "not a DPV consent state"),
        ([{**good, "pii_principal_id": "\u200b"}], None, 422, "[0].pii_principal_id", "invisible"),
        ([good, record("r4", ("ConsentGiven", None))], None, 422, "[1].events[0].effective_at",
         "effective_at is required"),
        ([{**good, "purpose": "never-declared"}], None, 422, "[0].purpose", "not declared"),
        ([{**good, "events": [{**good["events"][0], "event_id": "x-1"}]}], None, 409,
         "[0].events[0].event_id", "already in the ledger with other content"),
        (json.dumps(event("n", "grant", 1)) + "\n" + json.dumps(event("n", "maybe", 1)) + "\n",
         NDJSON, 422, "line 2.action", "action"),
        ('{"subject_id": "f", "seq": 1.5}\n', NDJSON, 422, "line 1", "floating-point"),
        ("", NDJSON, 422, "body", "holds no events"),
        (b"\xff\xfe{}", NDJSON, 400, "body", "not UTF-8"),
        ([], None, 422, "body", "holds no events"),
        ("{oops", {"content-type": "application/json"}, 400, "body", "not valid JSON"),
        ("7", {"content-type": "application/json"}, 422, "body", "a JSON list"),
    ]
    with service.as_role("consent-writer") as http:
        for payload, headers, status, field, words in cases:
            if headers is None:
                answer = http.post("/v1/consent/import", json=payload)
            else:
                data = payload if isinstance(payload, bytes) else payload.encode()
                answer = http.post("/v1/consent/import", content=data, headers=headers)
            assert answer.status_code == status, (field, answer.text)
            error = answer.json()["error"]
            assert error["field"] == field and words in error["message"], (field, error)
    assert head(service) == 1  # nothing of any of them was appended
    with service.as_role("reader") as http:
        assert http.post("/v1/consent/import", json=[good]).status_code == 403
    with service.as_role("data-engineer") as http:
        assert http.post("/v1/consent/import", json=[good]).status_code == 403
    assert head(service) == 1


def test_an_imported_withdrawal_or_expiry_withdraws_at_once(service_home: Path) -> None:
    pub = publish_rows(service_home)
    body = [record("B", ("ConsentWithdrawn", "2026-02-01T00:00:00Z")),
            record("E", ("ConsentExpired", "2026-02-01T00:00:00Z"))]
    with serving(pub.home) as service:
        with service.as_role("consent-writer") as http:
            answer = http.post("/v1/consent/import", json=body)
        assert answer.status_code == 201, answer.text
        files = [pub.folder(v) / i.file_name for v in VERSIONS for i in pub.images]
        deadline = time.monotonic() + 30  # a bound for the poll, not a timing assertion
        while any(f.exists() for f in files) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(f.exists() for f in files)  # m0 stood on B, m1 on E
        with service.as_role("consent-officer") as http:
            erasure = http.get("/v1/consent/subjects/E/erasure").json()
        with service.as_role("auditor") as http:
            entries = http.get("/v1/access-log", params={"limit": 1000}).json()["entries"]
    assert {r for w in erasure["withdrawn"] for r in w["reasons"]} == {"ConsentExpired"}
    assert ["B", "E"] in [e["subjects"] for e in entries if e["path"] == "/v1/consent/import"]
