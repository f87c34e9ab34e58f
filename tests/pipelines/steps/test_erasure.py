"""Erasure on a real home: who is erased, what goes, what stays, and that nothing left in
the home names the subject (DESIGN.md invariant 6)."""

from __future__ import annotations

import csv
import re
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from consent.events import utc_now
from pipelines.catalog import (
    AuditRow,
    Candidate,
    Erasure,
    ModelRecord,
    ReleaseImage,
    ShardModel,
    SourceRecord,
)
from pipelines.catalog.erasure_queries import record_ids_of
from pipelines.defs.runner import instance_for, run_build
from pipelines.demo.sources import demo_slices
from pipelines.steps import erasure
from pipelines.steps.eligibility import is_holdout
from pipelines.steps.erasure import erase_ended
from pipelines.steps.ingest import ingest
from pipelines.steps.locks import build_lock
from pipelines.steps.release import releases_root
from tests.pipelines.conftest import PURPOSE, Deployment

DATABASES = re.compile(r"^(consent|catalog|access)\.duckdb(\.wal|\.lock)?$")


def files_naming(home: Path, ids: set[str]) -> dict[str, set[str]]:
    """Every file of the home outside the databases whose bytes hold one of `ids` as a
    whole id (not as the prefix of a longer one: `y7` is not `y70`)."""
    pattern = re.compile(rb"(?<![A-Za-z0-9_-])(" + b"|".join(re.escape(i.encode()) for i in sorted(ids))
                         + rb")(?![A-Za-z0-9_-])")
    found = {}
    for path in sorted(home.rglob("*")):
        if path.is_file() and not DATABASES.match(path.name):
            hits = {m.group(1).decode() for m in pattern.finditer(path.read_bytes())}
            if hits:
                found[path.relative_to(home).as_posix()] = hits
    return found


def ingest_copy(home: Path, of_subject: str, for_subject: str, record_id: str) -> None:
    """Ingest one of `of_subject`'s slices again as `for_subject`'s record: the same
    pixels, so the same content-addressed PNG."""
    s = next(s for s in demo_slices() if s.subject_id == of_subject)
    incoming, manifest = home.parent / "incoming-copy", home.parent / "copy.csv"
    (incoming / s.relpath).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(s.path, incoming / s.relpath)
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows([["path", "subject_id", "label", "record_id"],
                                  [s.relpath, for_subject, s.label, record_id]])
    assert ingest(incoming, manifest=manifest, home=home).accepted == 1


def trainees(dep: Deployment, k: int) -> list[str]:
    """`k` subjects that a build trains on (holdout subjects train no model)."""
    return [s for s in dep.subjects if not is_holdout(s, dep.config.holdout_fraction)][-k:]


def test_the_checkpoint_file_name_is_restated_right() -> None:
    from generators.checkpoints import META_FILE

    assert erasure._META_FILE == META_FILE


@pytest.mark.slow
def test_erasure_after_a_revoke_leaves_nothing_that_names_the_subject(deployment: Deployment) -> None:
    from pipelines.steps.reconcile import reconcile  # withdraws the published images first

    dep = deployment
    never_asked, future = dep.subjects[0], dep.subjects[1]
    victim, sharer = trainees(dep, 2)
    ingest_copy(dep.home, victim, sharer, "shared/pixels-1")
    for subject in dep.subjects[2:]:
        dep.ledger.grant(subject, PURPOSE)
    dep.ledger.grant(future, PURPOSE, effective_at=utc_now() + timedelta(days=30))
    instance = instance_for(dep.home)  # persistent: its run logs live in the home too
    first = run_build(dep.home, dep.config, instance=instance)
    assert first.success, first.failure

    records = {r.record_id: r for r in dep.catalog.sources(subject_id=victim)}
    shared = next(r for r in records.values() if r.content_hash == dep.catalog.select(
        SourceRecord, "WHERE record_id = 'shared/pixels-1'")[0].content_hash)
    models = {r.model_version for r in dep.catalog.select(ModelRecord, "WHERE subject_id = ?", [victim])}
    assert models, "the victim trained no model: pick another"
    checkpoints = [m for m in dep.catalog.select(ShardModel) if m.model_version in models]
    # a flagged near-copy: one of the victim's own slices, drawn by their model
    model = checkpoints[0]
    flagged = Candidate(candidate_id=uuid.uuid4().hex, snapshot_id=model.snapshot_id, shard=model.shard,
                        model_version=model.model_version, label="0", seed=0,
                        image_path=f"candidates/{uuid.uuid4().hex}.png", created_at=utc_now())
    shutil.copyfile(dep.home / shared.image_path, dep.home / flagged.image_path)
    dep.catalog.add([flagged], [AuditRow(
        snapshot_id=model.snapshot_id, candidate_id=flagged.candidate_id, round=0, phash_distance=0,
        pixel_l2=0.0, patch_l2=0.0, embedding_cosine=1.0, nearest_phash=None, nearest_pixel=None,
        nearest_patch=None, nearest_embedding=None, flagged=True, kept=False)])
    candidates = [c for c in dep.catalog.select(Candidate) if c.model_version in models]
    assert len({c.candidate_id for c in candidates}) > dep.config.images_per_shard // 2
    kept_sources = {s: [dep.home / r.image_path for r in dep.catalog.sources(subject_id=s)]
                    for s in (never_asked, future)}

    # copies of what crashes leave behind, placed after the reconcile (whose own erasure
    # pass would otherwise have nothing of this kind to find)
    saved = dep.home.parent / "saved"
    shutil.copytree(releases_root(dep.home) / first.version, saved / "release")
    shutil.copytree(dep.home / model.model_path, saved / "checkpoint")

    dep.ledger.revoke(victim, PURPOSE)
    reconciled = reconcile(dep.catalog, dep.ledger, dep.config)
    assert reconciled.erasure is not None and reconciled.erasure.subjects == [victim]
    on_victim = dep.catalog.select(ReleaseImage, f"WHERE model_version IN ({', '.join('?' * len(models))})",
                                   sorted(models))
    assert on_victim and not [i for i in on_victim
                              if (releases_root(dep.home) / i.version / i.file_name).exists()]
    # what crashes leave behind: a publish's staging folder, a checkpoint saved but never
    # recorded, a checkpoint save's staging folder (both naming the victim's records)
    crashed = releases_root(dep.home) / ".tmp-v0042-0badf00d"
    shutil.copytree(saved / "release", crashed)
    unrecorded = dep.home / "models" / str(model.shard) / f"shard{model.shard}-00000000feedbeef"
    staging = unrecorded.parent / f".shard{model.shard}-1111222233334444.x1y2z3"
    shutil.copytree(saved / "checkpoint", unrecorded)
    shutil.copytree(saved / "checkpoint", staging)
    shutil.rmtree(saved)

    ids = {victim, *records}
    assert files_naming(dep.home, ids)  # the checkpoints name the victim's records
    report = erase_ended(dep.catalog, dep.ledger, dep.config)
    assert report.deferred is None and not report.failures
    assert not (set(report.line().split()) & ids) and victim not in report.line()

    # sources: all gone but the PNG the sharer's record still needs
    for record in records.values():
        assert (dep.home / record.image_path).exists() is (record is shared), record.record_id
    assert [r.record_id for r in dep.catalog.sources(subject_id=victim)] == [shared.record_id]
    # every checkpoint that saw the victim, and all its candidates, flagged included
    assert not [m for m in checkpoints if (dep.home / m.model_path).exists()]
    assert not unrecorded.exists() and not staging.exists() and not crashed.exists()
    assert not [c for c in candidates if (dep.home / c.image_path).exists()]
    assert files_naming(dep.home, ids) == {}
    # the record of erasure: ids, hashes and times
    rows = dep.catalog.select(Erasure, "WHERE subject_id = ?", [victim])
    by_kind = {k: {r.ref for r in rows if r.kind == k} for k in ("source", "checkpoint", "candidate", "temp")}
    assert by_kind["source"] == set(records) - {shared.record_id}
    assert by_kind["checkpoint"] == models | {unrecorded.name}
    assert by_kind["candidate"] == {c.candidate_id for c in candidates}
    assert by_kind["temp"] >= {f"releases/{crashed.name}", f"models/{model.shard}/{staging.name}"}
    assert all(r.content_hash == records[r.ref].content_hash for r in rows if r.kind == "source")
    # who keeps their sources: never asked, granted from a future date, the sharer
    for subject, paths in kept_sources.items():
        assert paths and all(p.exists() for p in paths), subject
    assert dep.catalog.sources(subject_id=sharer)

    again = erase_ended(dep.catalog, dep.ledger, dep.config)
    assert sum(again.erased.values()) == 0 and again.recorded == 0
    assert len(dep.catalog.select(Erasure)) == len(rows)

    rebuilt = run_build(dep.home, dep.config, instance=instance)
    assert rebuilt.success, rebuilt.failure
    assert rebuilt.retrained and rebuilt.retrained >= 1
    used = {i.model_version for i in dep.catalog.select(ReleaseImage, "WHERE version = ?", [rebuilt.version])}
    assert used and not used & models
    assert victim not in {r.subject_id for r in dep.catalog.select(ModelRecord) if r.model_version in used}
    assert files_naming(dep.home, {victim, *record_ids_of(dep.catalog, {victim})}) == {}


def test_who_is_erased_and_who_keeps_their_sources(deployment: Deployment) -> None:
    """Revoked is erased; expired only when the expiry policy withdraws; never asked, a
    future-dated grant, a grant standing for another purpose, a re-grant: kept."""
    dep = deployment
    revoked, expired, granted, never, future, other, regranted = dep.subjects[:7]
    past = utc_now() - timedelta(days=400)
    for subject in (revoked, granted, other, regranted):
        dep.ledger.grant(subject, PURPOSE, effective_at=past)
    dep.ledger.grant(expired, PURPOSE, effective_at=past, expires_at=past + timedelta(days=30))
    dep.ledger.grant(future, PURPOSE, effective_at=utc_now() + timedelta(days=30))
    dep.ledger.grant(other, "research", effective_at=past)
    for subject in (revoked, other, regranted):
        dep.ledger.revoke(subject, PURPOSE, effective_at=past + timedelta(days=1))
    dep.ledger.grant(regranted, PURPOSE, effective_at=past + timedelta(days=2))
    files = {s: [dep.home / r.image_path for r in dep.catalog.sources(subject_id=s)]
             for s in dep.subjects[:7]}
    assert all(files.values())
    records = {r.record_id for r in dep.catalog.sources(subject_id=expired)}
    (files[expired][0]).unlink()  # gone by hand: the pass still finishes

    keep = dep.config.model_copy(update={"expiry_policy": "keep"})
    with build_lock(dep.home, run_id="someone-elses-build"):
        busy = erase_ended(dep.catalog, dep.ledger, keep)
    assert busy.deferred and "someone-elses-build" in busy.deferred and busy.recorded == 0
    assert all(p.exists() for p in files[revoked])

    first = erase_ended(dep.catalog, dep.ledger, keep)
    assert first.subjects == [revoked] and first.erased["source"] == len(files[revoked])
    assert not any(p.exists() for p in files[revoked])
    assert all(p.exists() for s in (granted, never, future, other, regranted) for p in files[s])
    assert all(p.exists() for p in files[expired][1:])

    second = erase_ended(dep.catalog, dep.ledger, dep.config)  # expiry withdraws
    assert second.subjects == [expired] and second.erased["source"] == len(files[expired]) - 1
    assert {r.ref for r in dep.catalog.select(Erasure, "WHERE subject_id = ?", [expired])} == records
    assert dep.catalog.sources(subject_id=expired) == [] and dep.catalog.sources(subject_id=revoked) == []
    assert all(p.exists() for s in (granted, never, future, other, regranted) for p in files[s])

    third = erase_ended(dep.catalog, dep.ledger, dep.config)
    assert third.subjects == [] and third.recorded == 0 and third.line() == "erasure: nothing to erase"

    ends = erasure.consent_ends(dep.ledger, {never, future, other, regranted}, "withdraw", utc_now())
    assert "never asked" in ends[never].why
    assert "grant for purpose synthetic-training takes effect" in ends[future].why
    assert "consent still holds for purpose research" in ends[other].why
    assert "consent still holds for purpose synthetic-training" in ends[regranted].why
    assert not any(e.ended for e in ends.values())
