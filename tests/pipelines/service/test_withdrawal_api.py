"""A revoke through the API withdraws the subject's published images at once (issue 13,
section 6): within a second of the request, with the latency in the catalog.

Releases made of real catalog rows and real PNGs (tests/pipelines/steps/published.py:
subjects A-F, models m0 = A, B, C and m1 = D, E, F, releases v0001 and v0002), then a real
server on that home and a consent-writer's revoke of A.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipelines.catalog import Catalog, Withdrawal
from pipelines.steps.release import WITHDRAWN
from tests.pipelines.service.server import serving
from tests.pipelines.steps.published import PURPOSE, VERSIONS, publish_rows

BOUND_S = 1.0  # the bound: revoke -> withdrawn within a second
POLL_S = 0.005


def test_a_revoke_through_the_api_withdraws_the_subjects_images_within_a_second(
        service_home: Path) -> None:
    pub = publish_rows(service_home)
    of_a = [pub.folder(i.version) / i.file_name for i in pub.of_model("m0")]
    others = [pub.folder(i.version) / i.file_name for i in pub.of_model("m1")]
    assert len(of_a) == 8 and all(p.exists() for p in of_a + others)
    with serving(service_home) as service, service.as_role("consent-writer") as http:
        started = time.monotonic()
        answer = http.post("/v1/consent/events", json={
            "subject_id": "A", "purpose": PURPOSE, "action": "revoke", "event_id": "cmp-revoke-A"})
        while any(p.exists() for p in of_a) and time.monotonic() - started < 10 * BOUND_S:
            time.sleep(POLL_S)
        elapsed = time.monotonic() - started
        assert answer.status_code == 201, answer.text
        assert not [p for p in of_a if p.exists()], service.log()
        assert elapsed < BOUND_S, f"A's images took {elapsed:.2f}s to go"
        time.sleep(0.5)  # the pass goes on (bans, rows, card): nothing else may go
        assert all(p.exists() for p in others)
    revoke_seq = answer.json()["events"][0]["seq"]
    rows = [w for w in Catalog(service_home).select(Withdrawal) if w.subject_id == "A"]
    assert sorted((w.version, w.image_id) for w in rows) == sorted(
        (i.version, i.image_id) for i in pub.of_model("m0"))
    for w in rows:
        assert w.event_seq == revoke_seq
        assert w.latency_s is not None and 0 <= w.latency_s < BOUND_S, w
    for version in VERSIONS:
        listed = (pub.folder(version) / WITHDRAWN).read_text().split()
        assert sorted(listed) == sorted(i.image_id for i in pub.of_model("m0", version))


def test_revokes_of_one_batch_are_all_withdrawn(service_home: Path) -> None:
    pub = publish_rows(service_home)
    with serving(service_home) as service, service.as_role("consent-writer") as http:
        answers = [http.post("/v1/consent/events", json=[
            {"subject_id": s, "purpose": PURPOSE, "action": "revoke"} for s in ("B", "E")])]
        files = [pub.folder(i.version) / i.file_name for i in pub.images]
        deadline = time.monotonic() + 30
        while any(p.exists() for p in files) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [a.status_code for a in answers] == [201]
        assert not [p for p in files if p.exists()], service.log()
    rows = Catalog(service_home).select(Withdrawal)
    assert {w.subject_id for w in rows} == {"B", "E"}
    assert len(rows) == len(pub.images) == 16


def test_a_revoke_sent_again_withdraws_what_the_first_left(service_home: Path) -> None:
    """The first revoke was recorded while nothing withdrew (here: withdraw_on_revoke off,
    as if the service had been killed before its withdrawal ran); the CMP's retry of the
    same event is "already present" and must still withdraw at once."""
    pub = publish_rows(service_home)
    of_a = [pub.folder(i.version) / i.file_name for i in pub.of_model("m0")]
    build_file = service_home / "consentgen.toml"
    original = build_file.read_text()
    revoke = {"subject_id": "A", "purpose": PURPOSE, "action": "revoke", "event_id": "cmp-A-2",
              "actor": "cmp"}
    assert "\n[service]\n" in original  # the template's table, every key commented out
    build_file.write_text(original.replace("\n[service]\n", "\n[service]\nwithdraw_on_revoke = false\n"))
    with serving(service_home) as service, service.as_role("consent-writer") as http:
        assert http.post("/v1/consent/events", json=revoke).json()["appended"] == 1
        time.sleep(0.5)
        assert all(p.exists() for p in of_a)
    build_file.write_text(original)
    with serving(service_home) as service, service.client(
            service.token("consent-writer", "cmp-after-restart")) as http:
        again = http.post("/v1/consent/events", json=revoke).json()
        assert "error" not in again, again
        deadline = time.monotonic() + 10 * BOUND_S
        while any(p.exists() for p in of_a) and time.monotonic() < deadline:
            time.sleep(POLL_S)
    assert again["appended"] == 0 and again["already_present"] == 1
    assert not [p for p in of_a if p.exists()]
