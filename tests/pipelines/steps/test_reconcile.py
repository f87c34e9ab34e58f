"""The reconcile: what consent no longer covers NOW leaves every release, once, and stays out.

The first tests run on releases made of real catalog rows and PNG files (`published`);
the slow ones at the end build real releases with tiny models and rebuild them.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest

from consent import iso27560_records
from consent.events import utc_now
from consent.state import OPERATOR_WITHDRAWAL_SOURCE
from consentgen.errors import ReleaseError
from pipelines.catalog import Ban, ModelRecord, ReleaseImage, Snapshot, Withdrawal
from pipelines.defs.runner import run_build
from pipelines.settings import quick_profile
from pipelines.steps.bans import file_pixel_hash
from pipelines.steps.candidates import sample_candidates
from pipelines.steps.eligibility import select_eligible
from pipelines.steps.reconcile import reconcile
from pipelines.steps.release import WITHDRAWN, releases_root
from pipelines.steps.shard_training import StaleShardError, current_models, train_shard
from pipelines.steps.snapshot import take_snapshot
from pipelines.steps.withdrawal import withdraw_image
from tests.pipelines.conftest import Deployment
from tests.pipelines.steps.published import (
    PURPOSE,
    VERSIONS,
    Published,
    first_build,
    publish_rows,
    release_pixels,
)

CONFIG = quick_profile()


@pytest.fixture
def pub(home: Path) -> Published:
    return publish_rows(home)


def listed(pub: Published, version: str) -> list[str]:
    return (pub.folder(version) / WITHDRAWN).read_text().split()


def test_a_revoke_is_withdrawn_from_every_release_once(pub: Published) -> None:
    assert reconcile(pub.catalog, pub.ledger, CONFIG).count == 0
    revoke = pub.ledger.revoke("B", PURPOSE)
    pixels = {file_pixel_hash(pub.home / f"candidates/c0{k}.png") for k in range(4)}
    report = reconcile(pub.catalog, pub.ledger, CONFIG)
    tainted = pub.of_model("m0")
    assert report.count == len(tainted) == 8 and report.reasons == {"ConsentWithdrawn": 8}
    assert report.stale_shards == [0] and report.stale_models == ["m0"] and not report.more
    for version in VERSIONS:
        assert all(not (pub.folder(version) / i.file_name).exists() for i in pub.of_model("m0", version))
        assert all((pub.folder(version) / i.file_name).exists() for i in pub.of_model("m1", version))
        assert sorted(listed(pub, version)) == sorted(i.image_id for i in pub.of_model("m0", version))
    rows = pub.catalog.select(Withdrawal)
    assert {(r.version, r.image_id) for r in rows} == {(i.version, i.image_id) for i in tainted}
    assert {(r.subject_id, r.event_seq, r.reason) for r in rows} == {("B", revoke.seq, "ConsentWithdrawn")}
    assert all(r.revoked_recorded_at == revoke.recorded_at and r.effective_at == revoke.effective_at
               and 0 <= r.latency_s < 60 and 0 <= r.latency_effective_s < 60 for r in rows)
    bans = pub.catalog.select(Ban)
    assert {b.value for b in bans if b.kind == "candidate"} == {f"c0{k}" for k in range(4)}
    assert {b.value for b in bans if b.kind == "pixels"} == pixels
    # B's consent has ended for every purpose: the pass erased what their model made
    assert report.erasure is not None and report.erasure.subjects == ["B"]
    assert not any((pub.home / f"candidates/c0{k}.png").exists() for k in range(4))

    again = reconcile(pub.catalog, pub.ledger, CONFIG)  # idempotent: nothing twice
    assert again.count == 0 and again.banned == 0 and again.stale_shards == [0]
    assert len(pub.catalog.select(Withdrawal)) == 8 and len(listed(pub, "v0001")) == 4
    assert "nothing to withdraw" in again.line() and "shards to rebuild: 0" in again.line()


def test_a_missing_release_folder_stops_nothing(pub: Published) -> None:
    shutil.rmtree(pub.folder("v0001"))  # deleted by hand
    pub.ledger.revoke("E", PURPOSE)
    report = reconcile(pub.catalog, pub.ledger, CONFIG)
    assert report.count == 8 and report.missing_folders == ["v0001"]
    assert all(not (pub.folder("v0002") / i.file_name).exists() for i in pub.of_model("m1", "v0002"))
    assert sorted(listed(pub, "v0002")) == sorted(i.image_id for i in pub.of_model("m1", "v0002"))
    assert {r.version for r in pub.catalog.select(Withdrawal)} == {"v0001", "v0002"}
    assert "release folder(s) missing, recorded anyway: v0001" in report.line()
    assert not pub.folder("v0001").exists()


def test_a_future_dated_revoke_waits_for_its_time(pub: Published) -> None:
    effective = utc_now() + timedelta(hours=1)
    revoke = pub.ledger.revoke("A", PURPOSE, effective_at=effective)
    assert reconcile(pub.catalog, pub.ledger, CONFIG).count == 0
    before = reconcile(pub.catalog, pub.ledger, CONFIG, now=effective - timedelta(seconds=1))
    assert before.count == 0 and before.stale_shards == []
    after = reconcile(pub.catalog, pub.ledger, CONFIG, now=effective + timedelta(seconds=2))
    assert after.count == 8 and after.stale_shards == [0]
    rows = pub.catalog.select(Withdrawal)
    assert {(r.event_seq, r.effective_at) for r in rows} == {(revoke.seq, effective)}
    assert all(r.latency_effective_s == pytest.approx(2.0) for r in rows)
    assert all(r.latency_s == pytest.approx((effective - revoke.recorded_at).total_seconds() + 2)
               for r in rows)


@pytest.mark.parametrize("policy", ["withdraw", "keep"])
def test_expiry_follows_the_policy(home: Path, policy: str) -> None:
    expires = utc_now() + timedelta(days=1)
    pub = publish_rows(home, expires_at=expires)
    config = CONFIG.model_copy(update={"expiry_policy": policy})
    assert reconcile(pub.catalog, pub.ledger, config).count == 0  # every grant still holds
    report = reconcile(pub.catalog, pub.ledger, config, now=expires + timedelta(minutes=1))
    assert report.stale_shards == [0, 1]  # models of lapsed subjects are never used again
    if policy == "keep":
        assert report.count == 0 and report.kept_expired_subjects == 6
        assert pub.catalog.select(Withdrawal) == []
        assert "6 expired subject(s) kept (expiry policy keep)" in report.line()
        return
    assert report.count == len(pub.images) == 16 and report.reasons == {"ConsentExpired": 16}
    grants = {e.subject_id: e for e in pub.ledger.events()}
    rows = pub.catalog.select(Withdrawal)
    assert all(r.effective_at == expires and r.event_seq == grants[r.subject_id].seq
               and r.latency_effective_s == pytest.approx(60.0) for r in rows)
    assert all(not any(pub.folder(v).glob("images/*/*.png")) for v in VERSIONS)


def test_a_pass_is_bounded(pub: Published) -> None:
    pub.ledger.revoke("A", PURPOSE)
    first = reconcile(pub.catalog, pub.ledger, CONFIG, max_images=3)
    assert first.count == 3 and first.more and "more to withdraw" in first.line()
    rest = reconcile(pub.catalog, pub.ledger, CONFIG, max_images=3)
    assert rest.count == 3 and rest.more
    last = reconcile(pub.catalog, pub.ledger, CONFIG, max_images=3)
    assert last.count == 2 and not last.more
    assert len(pub.catalog.select(Withdrawal)) == 8


def test_one_subject_at_once_then_the_rest(pub: Published) -> None:
    pub.ledger.revoke("B", PURPOSE)
    pub.ledger.revoke("F", PURPOSE)
    mine = reconcile(pub.catalog, pub.ledger, CONFIG, subject_id="F", note="asked by letter")
    assert mine.count == 8 and {r.subject_id for r in pub.catalog.select(Withdrawal)} == {"F"}
    assert {r.note for r in pub.catalog.select(Withdrawal)} == {"asked by letter"}
    assert mine.stale_shards == [0, 1]  # shard 0's model saw B: stale, whoever was asked about
    rest = reconcile(pub.catalog, pub.ledger, CONFIG)
    assert rest.count == 8 and {r.subject_id for r in pub.catalog.select(Withdrawal)} == {"B", "F"}


def test_an_operator_revoke_is_consent_revoked(pub: Published) -> None:
    pub.ledger.revoke("C", PURPOSE, actor="operator-1", source=OPERATOR_WITHDRAWAL_SOURCE)
    report = reconcile(pub.catalog, pub.ledger, CONFIG)
    assert report.reasons == {"ConsentRevoked": 8}
    record = next(r for r in iso27560_records(pub.ledger) if r["pii_principal_id"] == "C")
    assert record["consent_status"] == "dpv:ConsentRevoked"
    assert [e["consent_status"] for e in record["events"]] == ["dpv:ConsentGiven", "dpv:ConsentRevoked"]
    assert pub.ledger.verify().seq == 7


def test_a_model_that_saw_a_subject_not_eligible_now_is_never_used(pub: Published) -> None:
    snapshot = pub.catalog.select(Snapshot)[0]
    assert set(current_models(pub.catalog, snapshot, CONFIG)) == {0, 1}
    pub.ledger.revoke("D", PURPOSE)  # after the snapshot: the snapshot still lists D
    with pytest.raises(StaleShardError, match=r"shard\(s\) 1 "):
        current_models(pub.catalog, snapshot, CONFIG)


def test_one_image_leaves_every_release_with_its_look_alikes(pub: Published) -> None:
    first = pub.of_model("m1", "v0001")[0]
    twin = next(i for i in pub.of_model("m1", "v0001") if i.candidate_id != first.candidate_id)
    for path in [pub.home / f"candidates/{twin.candidate_id}.png",
                 *(pub.folder(v) / twin.file_name for v in VERSIONS)]:
        shutil.copyfile(pub.home / f"candidates/{first.candidate_id}.png", path)  # same pixels
    out = withdraw_image(pub.catalog, first.image_id, CONFIG, note="looks like me")
    gone = {i.image_id for i in pub.images if i.candidate_id in (first.candidate_id, twin.candidate_id)}
    assert {i for ids in out.withdrawn.values() for i in ids} == gone and len(gone) == 4
    assert all(not (pub.folder(i.version) / i.file_name).exists() for i in pub.images if i.image_id in gone)
    rows = pub.catalog.select(Withdrawal)
    assert {r.reason for r in rows} == {"ImageWithdrawn"} and {r.subject_id for r in rows} == {None}
    bans = {(b.kind, b.value) for b in pub.catalog.select(Ban)}
    assert ("pixels", file_pixel_hash(pub.home / f"candidates/{first.candidate_id}.png")) in bans
    assert {("candidate", first.candidate_id), ("candidate", twin.candidate_id)} <= bans
    again = withdraw_image(pub.catalog, first.image_id, CONFIG)  # already down: nothing twice
    assert again.withdrawn == {} and again.banned == 0 and len(pub.catalog.select(Withdrawal)) == 4
    with pytest.raises(ReleaseError, match="no published image 'nope'"):
        withdraw_image(pub.catalog, "nope", CONFIG)


def test_the_report_is_json(pub: Published) -> None:
    pub.ledger.revoke("A", PURPOSE)
    data = json.loads(reconcile(pub.catalog, pub.ledger, CONFIG).model_dump_json())
    assert data["count"] == 8 and data["stale_shards"] == [0] and data["more"] is False
    assert sorted(data["withdrawn"]) == list(VERSIONS)


# --- real builds with tiny models ---------------------------------------------------


@pytest.mark.slow
def test_a_future_dated_revoke_is_withdrawn_when_due_and_never_republished(deployment: Deployment) -> None:
    dep = deployment
    first_build(dep)
    v1 = releases_root(dep.home) / "v0001"
    images = dep.catalog.select(ReleaseImage, "WHERE version = 'v0001' ORDER BY image_id")
    victim_model, shard = images[0].model_version, images[0].shard
    victim = dep.catalog.select(ModelRecord, "WHERE model_version = ?", [victim_model])[0].subject_id
    tainted = [i for i in images if i.model_version == victim_model]

    effective = utc_now() + timedelta(seconds=3)
    dep.ledger.revoke(victim, PURPOSE, effective_at=effective)
    assert reconcile(dep.catalog, dep.ledger, dep.config).count == 0  # not before its time
    edge = reconcile(dep.catalog, dep.ledger, dep.config, now=effective - timedelta(milliseconds=1))
    assert edge.count == 0 and edge.stale_shards == []
    assert all((v1 / i.file_name).exists() for i in images)

    time.sleep(max(0.0, (effective - utc_now()).total_seconds()) + 0.1)
    due = reconcile(dep.catalog, dep.ledger, dep.config)  # the first pass after
    assert due.count == len(tainted) and due.stale_shards == [shard]
    assert all(not (v1 / i.file_name).exists() for i in tainted)
    withdrawn = {b.value for b in dep.catalog.select(Ban) if b.kind == "pixels"}
    assert len(withdrawn) == len(tainted)
    snapshot = dep.catalog.select(Snapshot, "ORDER BY taken_at")[0]  # v0001's, which lists the victim
    with pytest.raises(StaleShardError, match=rf"shard\(s\) {shard} "):
        current_models(dep.catalog, snapshot, dep.config)

    second = run_build(dep.home, dep.config, shards=due.stale_shards, instance=dep.instance)
    assert second.success and second.version == "v0002" and second.retrained == 1, second.failure
    assert len(release_pixels(dep.home, "v0002")) == len(images)
    assert not withdrawn & release_pixels(dep.home, "v0002")  # none of the withdrawn pixels is back
    v2_models = {i.model_version for i in dep.catalog.select(ReleaseImage, "WHERE version = 'v0002'")}
    assert victim not in {r.subject_id for r in dep.catalog.select(ModelRecord)
                          if r.model_version in v2_models}
    after = reconcile(dep.catalog, dep.ledger, dep.config)
    assert after.count == 0 and after.stale_shards == []
    assert len(dep.catalog.select(Withdrawal)) == len(tainted)  # nothing withdrawn twice


@pytest.mark.slow
def test_when_every_grant_expires_every_image_is_withdrawn(deployment: Deployment) -> None:
    dep = deployment
    expires = utc_now() + timedelta(hours=1)
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE, expires_at=expires)
    assert run_build(dep.home, dep.config, instance=dep.instance).version == "v0001"
    files = sorted((releases_root(dep.home) / "v0001").glob("images/*/*.png"))
    later = expires + timedelta(minutes=1)
    keep = dep.config.model_copy(update={"expiry_policy": "keep"})
    kept = reconcile(dep.catalog, dep.ledger, keep, now=later)
    assert kept.count == 0 and all(f.exists() for f in files)
    assert kept.stale_shards == list(range(dep.config.shards))
    gone = reconcile(dep.catalog, dep.ledger, dep.config, now=later)
    assert gone.count == len(files) == dep.config.shards * dep.config.images_per_shard
    assert gone.reasons == {"ConsentExpired": len(files)} and not any(f.exists() for f in files)


@pytest.mark.slow
def test_a_fresh_sample_with_banned_pixels_is_drawn_again(deployment: Deployment) -> None:
    dep = deployment
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE)
    snapshot = take_snapshot(dep.ledger, dep.catalog, PURPOSE)
    select_eligible(dep.catalog, dep.ledger, snapshot, dep.config)
    model = train_shard(dep.catalog, snapshot, 0, dep.config).model
    labels = ["0", "1", "0"]
    first = sample_candidates(dep.catalog, snapshot, model, labels, 7, dep.config)
    hashes = [file_pixel_hash(dep.home / c.image_path) for c in first]
    dep.catalog.add([Ban(kind="pixels", value=hashes[1], reason="ImageWithdrawn", version=None,
                         image_id=None, banned_at=utc_now())])
    again = sample_candidates(dep.catalog, snapshot, model, labels, 7, dep.config)
    redrawn = [file_pixel_hash(dep.home / c.image_path) for c in again]
    assert redrawn[0] == hashes[0] and redrawn[2] == hashes[2]  # the same seed draws the same
    assert redrawn[1] != hashes[1] and [c.label for c in again] == ["0", "1", "0"]
