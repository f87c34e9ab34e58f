"""The build's audit step: a planted copy of a source is flagged, replaced from the same
shard model with the (shard, round) seed, and every round is on the record."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from PIL import Image

from consentgen.errors import ReplacementExhaustedError
from consentgen.labels import sorted_labels
from pipelines.catalog import AuditRow, Candidate, EligibleRecord, Snapshot
from pipelines.catalog.lineage import kept_candidates
from pipelines.settings import BuildConfig
from pipelines.steps.audit import audit_and_replace
from pipelines.steps.candidates import generate_candidates
from pipelines.steps.eligibility import select_eligible
from pipelines.steps.shard_training import train_shard
from pipelines.steps.snapshot import take_snapshot
from tests.pipelines.conftest import PURPOSE, Deployment


def expected_seed(config: BuildConfig, snapshot: Snapshot, shard: int, round_: int) -> int:
    """The seed a (shard, round) samples with, written out here to pin it."""
    parts = f"{config.seed}|{snapshot.snapshot_id}|{shard}|{round_}"
    return int.from_bytes(hashlib.sha256(parts.encode()).digest()[:7], "big")


def build_candidates(dep: Deployment, config: BuildConfig) -> tuple[Snapshot, list[Candidate]]:
    snapshot = take_snapshot(dep.ledger, dep.catalog, PURPOSE)
    select_eligible(dep.catalog, dep.ledger, snapshot, config)
    for shard in range(config.shards):
        train_shard(dep.catalog, snapshot, shard, config)
    return snapshot, generate_candidates(dep.catalog, snapshot, config)


def plant_copy(dep: Deployment, candidate: Candidate, config: BuildConfig) -> None:
    """Overwrite a candidate's PNG with a real source: what a memorising model would emit."""
    source = dep.catalog.sources()[0]
    size = config.generator.image_size
    Image.open(dep.home / source.image_path).convert("L").resize((size, size)).save(
        dep.home / candidate.image_path)


def rows_of(dep: Deployment, snapshot: Snapshot, model: type) -> list:
    return dep.catalog.select(model, "WHERE snapshot_id = ? ORDER BY candidate_id",
                              [snapshot.snapshot_id])


def assert_balanced_per_shard(dep: Deployment, snapshot: Snapshot, candidates: list[Candidate],
                              config: BuildConfig) -> None:
    """Each shard's labels cycle, in ascending order, the classes its records hold."""
    several = False
    for shard in range(config.shards):
        classes = sorted_labels(r.label for r in dep.catalog.select(
            EligibleRecord, "WHERE snapshot_id = ? AND shard = ? AND role = 'train'",
            [snapshot.snapshot_id, shard]))
        several |= len(classes) > 1
        assert [c.label for c in candidates if c.shard == shard] == [
            classes[i % len(classes)] for i in range(config.images_per_shard)]
    assert several  # the rule is seen at work on a shard with more than one class


@pytest.mark.slow
def test_a_planted_copy_is_replaced_and_exhaustion_says_so(deployment: Deployment) -> None:
    dep = deployment
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE)

    # no replacement rounds allowed: the planted copy exhausts them at once
    strict = dep.config.model_copy(update={"max_replacement_rounds": 0})
    snapshot, candidates = build_candidates(dep, strict)
    assert_balanced_per_shard(dep, snapshot, candidates, strict)  # every shard sampled afresh
    plant_copy(dep, candidates[0], strict)
    with pytest.raises(ReplacementExhaustedError, match=r"max_replacement_rounds") as info:
        audit_and_replace(dep.catalog, snapshot, strict)
    assert "1 candidate(s)" in str(info.value)
    first_rows = rows_of(dep, snapshot, AuditRow)
    assert len(first_rows) == len(candidates) and {r.round for r in first_rows} == {0}
    assert [r.candidate_id for r in first_rows if r.flagged] == [candidates[0].candidate_id]
    assert len(rows_of(dep, snapshot, Candidate)) == len(candidates)  # nothing resampled

    # a later build with rounds to spare replaces it from the same shard model
    config = dep.config
    first_snapshot = snapshot
    snapshot, candidates = build_candidates(dep, config)
    victim = candidates[0]
    plant_copy(dep, victim, config)
    out = audit_and_replace(dep.catalog, snapshot, config)

    audit_rows = rows_of(dep, snapshot, AuditRow)
    by_id = {c.candidate_id: c for c in rows_of(dep, snapshot, Candidate)}
    fresh = [c for c in by_id.values() if c.candidate_id not in {x.candidate_id for x in candidates}]
    assert out.flagged_total == 1 and out.replaced == 1 and out.rounds == 1
    assert out.kept == len(candidates) == config.shards * config.images_per_shard
    assert out.summary.n_candidates == len(candidates)
    assert out.summary.n_sources == len(dep.catalog.sources())
    assert out.summary.search.mode_used == "exact"
    assert len(fresh) == 1
    (new,) = fresh
    assert (new.shard, new.label, new.model_version) == (victim.shard, victim.label,
                                                         victim.model_version)
    assert new.seed == expected_seed(config, snapshot, victim.shard, 1)
    # the shard keeps what the first build's audit kept and draws only the empty slots
    assert {c.seed for c in candidates if c.shard == victim.shard} <= {
        expected_seed(config, first_snapshot, victim.shard, 0),
        expected_seed(config, snapshot, victim.shard, 0)}
    assert Counter(r.round for r in audit_rows) == {0: len(candidates), 1: 1}
    for row in audit_rows:
        assert row.kept is (not row.flagged)
        assert row.round == (1 if row.candidate_id == new.candidate_id else 0)
    assert [r.candidate_id for r in audit_rows if r.flagged] == [victim.candidate_id]
    kept = kept_candidates(dep.catalog, snapshot.snapshot_id)
    assert {c.candidate_id for c in kept} == set(by_id) - {victim.candidate_id}
    assert Counter(c.shard for c in kept) == {s: config.images_per_shard for s in range(config.shards)}
