"""The lineage questions the build steps ask, against a real catalog file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.catalog import (
    AuditRow,
    Candidate,
    Catalog,
    EligibleRecord,
    Exclusion,
    ModelRecord,
    Release,
    ShardModel,
    Withdrawal,
)
from pipelines.catalog.lineage import (
    eligible_records,
    exclusions,
    final_audit_rows,
    kept_candidates,
    last_kept_candidates_of_model,
    model_by_fingerprint,
    releases,
    shard_training_records,
    snapshot_candidates,
    withdrawn_per_version,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
S1, S2 = "snap-1", "snap-2"


def model(version: str, shard: int, fingerprint: str, hours: int) -> ShardModel:
    return ShardModel(model_version=version, shard=shard, snapshot_id=S1, fingerprint=fingerprint,
                      n_records=1, model_path=f"models/{version}", epsilon=None, final_loss=None,
                      trained_at=T0 + timedelta(hours=hours))


def candidate(cid: str, snapshot: str, shard: int = 0, version: str = "m-ok") -> Candidate:
    return Candidate(candidate_id=cid, snapshot_id=snapshot, shard=shard, model_version=version,
                     label="0", seed=1, image_path=f"candidates/{cid}.png", created_at=T0)


def audit(cid: str, snapshot: str, round_: int, flagged: bool) -> AuditRow:
    return AuditRow(snapshot_id=snapshot, candidate_id=cid, round=round_, phash_distance=30,
                    pixel_l2=1.0 - round_ / 10, patch_l2=1.0, embedding_cosine=0.1,
                    nearest_phash="r1", nearest_pixel="r1", nearest_patch="r1",
                    nearest_embedding="r1", flagged=flagged, kept=not flagged)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "home")
    records = [("r2", "B", 0, "train"), ("r1", "A", 0, "train"), ("r3", "C", 0, "holdout"),
               ("r4", "D", 1, "train")]
    cat.add(
        [EligibleRecord(snapshot_id=S1, record_id=r, subject_id=s, label="0", shard=k, role=role)
         for r, s, k, role in records],
        [Exclusion(snapshot_id=S1, record_id="r9", subject_id="Z", reason="revoked"),
         Exclusion(snapshot_id=S2, record_id="r8", subject_id="Y", reason="revoked")],
        # m-new saw r9 (not eligible in S1): newest, yet not usable; m-ok saw r1 only
        [model("m-ok", 0, "fp-ok", 1), model("m-new", 0, "fp-new", 2), model("m-one", 1, "fp-1", 1)],
        [ModelRecord(model_version="m-ok", record_id="r1", subject_id="A"),
         ModelRecord(model_version="m-new", record_id="r1", subject_id="A"),
         ModelRecord(model_version="m-new", record_id="r9", subject_id="Z"),
         ModelRecord(model_version="m-one", record_id="r3", subject_id="C")],  # a holdout record
        # S1: c2 flagged and replaced by c3 in round 1; S2 drew c4 (kept), c5 (flagged)
        [candidate("c2", S1), candidate("c1", S1), candidate("c3", S1), candidate("c0", S1, shard=1,
                                                                                  version="m-one"),
         candidate("c4", S2), candidate("c5", S2)],
        [audit("c1", S1, 0, False), audit("c2", S1, 0, True), audit("c3", S1, 1, False),
         audit("c0", S1, 0, False), audit("c4", S2, 0, False), audit("c5", S2, 0, True)],
        [Release(version=v, snapshot_id=S1, head_seq=1, head_hash="h", n_images=3,
                 release_path=f"releases/{v}", created_at=T0) for v in ("v0002", "v0001")],
        [Withdrawal(version="v0001", image_id=i, subject_id="A", event_seq=5,
                    revoked_recorded_at=T0, withdrawn_at=T0, latency_s=0.5) for i in ("a", "b")],
    )
    return cat


def test_what_a_snapshot_chose_and_trained_on(catalog: Catalog) -> None:
    assert [r.record_id for r in eligible_records(catalog, S1)] == ["r1", "r2", "r3", "r4"]
    assert [e.record_id for e in exclusions(catalog, S1)] == ["r9"]
    assert [r.record_id for r in shard_training_records(catalog, S1, 0)] == ["r1", "r2"]
    assert shard_training_records(catalog, S2, 0) == []


def test_which_model_a_shard_may_use(catalog: Catalog) -> None:
    assert model_by_fingerprint(catalog, 0, "fp-new").model_version == "m-new"
    assert model_by_fingerprint(catalog, 1, "fp-new") is None


def test_what_the_audit_kept(catalog: Catalog) -> None:
    assert [c.candidate_id for c in snapshot_candidates(catalog, S1)] == ["c1", "c2", "c3", "c0"]
    assert [c.candidate_id for c in kept_candidates(catalog, S1)] == ["c1", "c3", "c0"]
    assert [c.candidate_id for c in kept_candidates(catalog, S2)] == ["c4"]
    final = final_audit_rows(catalog, S1)
    assert set(final) == {"c0", "c1", "c2", "c3"}
    assert (final["c2"].round, final["c2"].flagged) == (0, True)
    assert (final["c3"].round, final["c3"].kept) == (1, True)
    # an unchanged model's candidates are reused from the newest build that drew from it
    assert [c.candidate_id for c in last_kept_candidates_of_model(catalog, "m-ok")] == ["c4"]
    assert [c.candidate_id for c in last_kept_candidates_of_model(catalog, "m-one")] == ["c0"]
    assert last_kept_candidates_of_model(catalog, "m-new") == []


def test_releases_and_their_withdrawals(catalog: Catalog) -> None:
    assert [r.version for r in releases(catalog)] == ["v0001", "v0002"]
    assert withdrawn_per_version(catalog) == {"v0001": 2}
    assert withdrawn_per_version(Catalog(catalog.home.parent / "empty")) == {}
