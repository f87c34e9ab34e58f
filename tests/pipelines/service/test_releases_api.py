"""Releases, withdrawal, erasure records and the reconcile through a real server, on
releases made of real catalog rows and PNG files (`publish_rows`: m0 saw A, B, C; m1 saw
D, E, F; v0001 and v0002 both hold every candidate)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pipelines.steps.release import WITHDRAWN, write_latest
from tests.pipelines.service.server import Service, serving
from tests.pipelines.steps.published import PURPOSE, T0, VERSIONS, Published, publish_rows

OFFICER = "consent-officer"


@pytest.fixture
def pub(service_home: Path) -> Published:
    pub = publish_rows(service_home)
    write_latest(service_home, "v0002")
    (pub.folder("v0002") / "data_card.html").write_text("<html></html>")
    return pub


@pytest.fixture
def server(pub: Published) -> Iterator[Service]:
    with serving(pub.home) as running:
        yield running


def present(pub: Published, model: str, version: str) -> list[bool]:
    return [(pub.folder(version) / i.file_name).exists() for i in pub.of_model(model, version)]


def subjects_logged(service: Service, method: str, path: str) -> list[list[str]]:
    with service.as_role("auditor") as http:
        entries = http.get("/v1/access-log", params={"limit": 1000}).json()["entries"]
    return [e["subjects"] for e in entries if e["method"] == method and e["path"] == path]


def test_list_and_show_releases(server: Service) -> None:
    with server.as_role("reader") as http:
        listed = http.get("/v1/releases")
        latest = http.get("/v1/releases/latest")
        first = http.get("/v1/releases/v0001")
        unknown = http.get("/v1/releases/v0099")
        malformed = http.get("/v1/releases/newest")
    assert listed.status_code == 200
    rows = {r["version"]: r for r in listed.json()}
    assert sorted(rows) == list(VERSIONS)
    assert rows["v0002"] == {
        "version": "v0002", "status": "published", "created_at": "2026-01-01T02:00:00Z",
        "n_images": 8, "withdrawn": 0, "ledger_head": {"seq": 6, "hash": "h"},
        "snapshot_id": "snap-1", "path": "releases/v0002",
        "data_card": "releases/v0002/data_card.html", "latest": True}
    assert rows["v0001"]["latest"] is False and rows["v0001"]["data_card"] is None
    assert latest.status_code == 200 and latest.json()["version"] == "v0002"
    assert latest.json()["card"]["html"] == "releases/v0002/data_card.html"
    assert first.json()["images"] == {"published": 8, "present": 8, "withdrawn": 0,
                                      "listed_withdrawn": 0}
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "version"
    assert unknown.json()["error"]["code"] == "unknown_release"
    assert malformed.status_code == 422 and malformed.json()["error"]["field"] == "version"
    with server.as_role("consent-writer") as http:
        assert http.get("/v1/releases").status_code == 403
        assert http.get("/v1/releases/latest").status_code == 403
    with server.client() as http:
        assert http.get("/v1/releases").status_code == 401


def test_withdrawing_a_subject_revokes_for_them_and_takes_their_images_down(
        server: Service, pub: Published) -> None:
    with server.as_role("data-engineer") as http:  # may run a reconcile, not withdraw
        refused = http.post("/v1/releases/withdraw", json={"subject_id": "B"})
    assert refused.status_code == 403
    assert all(present(pub, "m0", v) == [True] * 4 for v in VERSIONS)
    with server.as_role(OFFICER) as http:
        answer = http.post("/v1/releases/withdraw", json={"subject_id": "B", "reason": "request 17"})
        state = http.get("/v1/consent/subjects/B", params={"purpose": PURPOSE}).json()
        shown = http.get("/v1/releases/v0001").json()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == 8 and body["stale_shards"] == [0]
    assert {v: sorted(ids) for v, ids in body["withdrawn"].items()} == {
        v: sorted(i.image_id for i in pub.of_model("m0", v)) for v in VERSIONS}
    event = body["event"]
    assert (event["subject_id"], event["action"], event["source"], event["actor"]) == (
        "B", "revoke", "consentgen:operator-withdrawal", f"token:test-{OFFICER}")
    assert state["status"] == "dpv:ConsentRevoked" and state["deciding_event"]["seq"] == event["seq"]
    for version in VERSIONS:  # the files really left both releases, the others stayed
        assert present(pub, "m0", version) == [False] * 4
        assert present(pub, "m1", version) == [True] * 4
        assert sorted((pub.folder(version) / WITHDRAWN).read_text().split()) == sorted(
            i.image_id for i in pub.of_model("m0", version))
    assert shown["images"]["present"] == 4 and shown["withdrawn"] == 4
    assert ["B"] in subjects_logged(server, "POST", "/v1/releases/withdraw")


def test_withdrawing_an_image_takes_every_copy_down(server: Service, pub: Published) -> None:
    image = pub.of_model("m1", "v0001")[0]
    twin = next(i for i in pub.of_model("m1", "v0002") if i.candidate_id == image.candidate_id)
    with server.as_role(OFFICER) as http:
        answer = http.post("/v1/releases/withdraw", json={"image": image.image_id,
                                                          "reason": "look-alike"})
        unknown = http.post("/v1/releases/withdraw", json={"image": "no-such-image"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["count"] == 2
    assert answer.json()["withdrawn"] == {"v0001": [image.image_id], "v0002": [twin.image_id]}
    assert not (pub.folder("v0001") / image.file_name).exists()
    assert not (pub.folder("v0002") / twin.file_name).exists()
    assert present(pub, "m1", "v0001").count(True) == 3 and all(present(pub, "m0", "v0001"))
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "image"


BAD_WITHDRAWALS = [
    ({}, "subject_id"),
    ({"subject_id": "B", "image": "x"}, "image"),
    ({"subject_id": "B", "colour": "red"}, "colour"),
    ({"subject_id": 7}, "subject_id"),
    ({"subject_id": "\u200b"}, "subject_id"),
    ({"subject_id": "B", "purpose": "Bad Purpose"}, "purpose"),
    ({"subject_id": "B", "purpose": "undeclared-purpose"}, "purpose"),
    ({"image": "x", "purpose": PURPOSE}, "purpose"),
    ({"image": " x"}, "image"),
]


def test_a_bad_withdrawal_names_the_field_and_changes_nothing(server: Service, pub: Published) -> None:
    with server.as_role(OFFICER) as http:
        answers = [(http.post("/v1/releases/withdraw", json=body), field)
                   for body, field in BAD_WITHDRAWALS]
        malformed = http.post("/v1/releases/withdraw", content=b"{oops",
                              headers={"content-type": "application/json"})
        head = http.get("/v1/consent/head").json()
    for answer, field in answers:
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["field"] == field, answer.text
    assert 400 <= malformed.status_code < 500 and malformed.json()["error"]["field"] == "body"
    assert head["seq"] == 6
    assert all(all(present(pub, m, v)) for m in ("m0", "m1") for v in VERSIONS)


def test_unknown_subject_is_404(server: Service) -> None:
    with server.as_role(OFFICER) as http:
        withdraw = http.post("/v1/releases/withdraw", json={"subject_id": "Z"})
        erasure = http.get("/v1/consent/subjects/Z/erasure")
        head = http.get("/v1/consent/head").json()
    for answer in (withdraw, erasure):
        assert answer.status_code == 404
        assert answer.json()["error"] == {"code": "unknown_subject", "field": "subject_id",
                                          "message": answer.json()["error"]["message"]}
    assert head["seq"] == 6


def test_the_erasure_record_after_a_withdrawal(server: Service, pub: Published) -> None:
    with server.as_role(OFFICER) as http:
        before = http.get("/v1/consent/subjects/B/erasure").json()
        http.post("/v1/releases/withdraw", json={"subject_id": "B"})
        after = http.get("/v1/consent/subjects/B/erasure")
    assert before["consent"]["ended"] is False and before["withdrawn"] == []
    assert after.status_code == 200
    record = after.json()
    assert record["subject_id"] == "B" and record["consent"]["ended"] is True
    assert [(w["version"], w["images"]) for w in record["withdrawn"]] == [("v0001", 4), ("v0002", 4)]
    assert sorted(e["ref"] for e in record["erased"] if e["kind"] == "candidate") == [
        f"c0{k}" for k in range(4)]
    assert not any((pub.home / f"candidates/c0{k}.png").exists() for k in range(4))
    assert [e["action"] for e in record["events"]] == ["grant", "revoke"]
    with server.as_role("auditor") as http:  # reads consent, not erasure records
        assert http.get("/v1/consent/subjects/B/erasure").status_code == 403
    assert ["B"] in subjects_logged(server, "GET", "/v1/consent/subjects/B/erasure")


@pytest.fixture
def expired(service_home: Path) -> Iterator[tuple[Service, Published]]:
    """Every grant expired long ago (2026-01-31) and nothing reconciled since."""
    pub = publish_rows(service_home, expires_at=T0 + timedelta(days=30))
    with serving(pub.home) as running:
        yield running, pub


def test_a_reconcile_pass_withdraws_what_expired(expired: tuple[Service, Published]) -> None:
    server, pub = expired
    with server.as_role("reader") as http:
        assert http.post("/v1/reconcile").status_code == 403
    with server.as_role("data-engineer") as http:
        bad = http.post("/v1/reconcile", params={"max_images": 0})
        answer = http.post("/v1/reconcile")
        again = http.post("/v1/reconcile")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "max_images"
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["count"] == 16 and report["reasons"] == {"ConsentExpired": 16}
    assert report["stale_shards"] == [0, 1] and report["stale_models"] == ["m0", "m1"]
    # a data engineer sees no subject: the erased ones are a count
    assert report["erasure"]["subjects"] == [] and report["erasure"]["subjects_hidden"] == 6
    assert not any(any(present(pub, m, v)) for m in ("m0", "m1") for v in VERSIONS)
    assert again.json()["count"] == 0
    logged = subjects_logged(server, "POST", "/v1/reconcile")
    assert list("ABCDEF") in logged
