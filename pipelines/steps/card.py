"""Gathering a release's data card: counts, thresholds, distances, figures, expectations.

Everything on the card comes from this build's catalog rows, its snapshot and the staged
release; the privacy and utility figures come from `pipelines.steps.figures`, and a
figure that could not be computed arrives as None with a notice saying why. Counts of
people under k (`BuildConfig.min_public_count`) are suppressed here, before the card
model exists, so their values never reach the release (``card/card.json`` included).
The card is saved with the release as ``card/card.json``, from which a withdrawal
redraws it (`pipelines.steps.release_files`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from consent import Ledger
from consent.events import utc_now
from consentgen.errors import ReleaseError
from pipelines.catalog.lineage import snapshot_candidates
from pipelines.catalog import Catalog, Snapshot
from pipelines.catalog.reasons import ExclusionReason
from pipelines.steps.checks import run_expectations, thresholds
from pipelines.card import (
    AuditThreshold,
    ConsentSnapshotHead,
    Counts,
    DataCard,
    DatasetInfo,
    DistanceDistribution,
    ExpectationsSummary,
    GeneratorInfo,
    ProvenanceInfo,
    SignerInfo,
    choose_samples,
    public_count,
    render_data_card,
)
from pipelines.steps.eligibility import EligibleSet, load_eligible
from pipelines.steps.figures import compute_figures
from pipelines.steps.images import load_gray
from pipelines.steps.provenance import StampInfo
from pipelines.steps.public_manifest import StagedImage
from pipelines.settings import BuildConfig
from pipelines.steps.shard_training import current_models

EXPECTATIONS_DIR = "expectations"


def people_counts(catalog: Catalog, eligible: EligibleSet, config: BuildConfig) -> dict[str, Any]:
    """The `Counts` of subjects, records and exclusions, each suppressed under k.

    Every exclusion reason is listed, zero included: a reason that appears only once
    someone has it would tell the same as its count.
    """
    k = config.min_public_count
    excluded = {reason.value: 0 for reason in ExclusionReason} | eligible.exclusion_counts()
    per_shard = eligible.shard_counts()
    return dict(
        sources_total=public_count(len(catalog.sources()), k),
        eligible_subjects=public_count(len({r.subject_id for r in eligible.records}), k),
        eligible_records=public_count(len(eligible.records), k),
        excluded_by_reason={reason: public_count(n, k) for reason, n in sorted(excluded.items())},
        shards=config.shards,
        records_per_shard=[public_count(per_shard.get(s, 0), k) for s in range(config.shards)],
    )


def provenance_info(stamp: StampInfo) -> ProvenanceInfo:
    """The card's record of what publish stamped on every image, with the trust anchors a
    reader verifies them against (public certificates: ``card/trust-anchors.pem``), taken
    from the very credentials publish signed with."""
    p = stamp.provenance
    note = stamp.watermark_note
    if stamp.unmarked:
        note += (f" {stamp.unmarked} image(s) carry no mark: marked, they crossed an audit "
                 "threshold, so they were published as audited.")
    return ProvenanceInfo(
        release=p.release, generator=p.generator, ledger_head=p.ledger_head,
        training_mining=p.training_mining, signer=SignerInfo(**stamp.signer.model_dump()),
        trust_anchors_pem=certificates_pem(stamp.trust_pem), watermark=stamp.watermark,
        watermark_note=note)


def certificates_pem(pem: bytes) -> str:
    """The certificates of a PEM file, re-encoded: comments and anything else a bundle
    holds between them stay behind."""
    certs = x509.load_pem_x509_certificates(pem)
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def card_renderer(catalog: Catalog, ledger: Ledger, snapshot: Snapshot, config: BuildConfig
                  ) -> Callable[[Path, str, pd.DataFrame, list[StagedImage], StampInfo], None]:
    """What `publish_release` calls inside the staging folder, before it becomes visible."""

    def render(staging: Path, version: str, manifest: pd.DataFrame, staged: list[StagedImage],
               stamp: StampInfo) -> None:
        reports = run_expectations(catalog, staged, config, docs_dir=staging / EXPECTATIONS_DIR,
                                   snapshot_id=snapshot.snapshot_id)
        failed = [r for r in reports if not r.success]
        if failed:
            raise ReleaseError(f"expectations failed: {', '.join(r.suite_name for r in failed)}")
        models = current_models(catalog, snapshot, config)
        privacy, utility, calibration, notes = compute_figures(catalog, snapshot, config, staged, models)
        eligible = load_eligible(catalog, snapshot.snapshot_id)
        all_candidates = snapshot_candidates(catalog, snapshot.snapshot_id)
        limits = thresholds(config)
        size = config.generator.image_size
        trains = config.generator.kind == "ddpm"  # img2img trains nothing: no preset, no epochs
        card = DataCard(
            version=version,
            created_at=utc_now(),
            profile=config.profile,
            dataset=DatasetInfo(**config.dataset.model_dump()),
            consent=ConsentSnapshotHead(seq=snapshot.head_seq, hash=snapshot.head_hash,
                                        snapshot_time=snapshot.taken_at),
            purpose=snapshot.purpose,
            counts=Counts(
                **people_counts(catalog, eligible, config),
                candidates_generated=len(all_candidates),
                flagged=len(all_candidates) - len(staged),
                replaced=len(all_candidates) - config.images_per_shard * len(models),
                published_per_label=dict(Counter(config.labels.name_of(s.candidate.label) for s in staged)),
            ),
            generator=GeneratorInfo(
                kind=config.generator.kind, image_size=(size, size),
                preset=config.generator.preset if trains else None,
                epochs=config.generator.epochs if trains else None,
                sampling_steps=config.generator.sample_steps,
                dp_epsilon=config.generator.dp_epsilon,
                dp_delta=config.generator.dp_delta if config.generator.dp_epsilon else None,
                model_versions=sorted(m.model_version for m in models.values())),
            thresholds={m: AuditThreshold(direction=d, value=v) for m, (d, v) in limits.items()},
            distances={m: DistanceDistribution(values=[float(x) for x in manifest[m]]) for m in limits},
            calibration=calibration,
            privacy=privacy,
            utility=utility,
            expectations=[ExpectationsSummary.from_report(r, staging) for r in reports],
            notices=[*config.notices, *notes],
            expiry_policy=config.expiry_policy,
            min_public_count=config.min_public_count,
            provenance=provenance_info(stamp),
        )
        by_id = {s.image_id: s for s in staged}
        shown = [by_id[i] for i in choose_samples(by_id, seed=config.seed)]
        samples = load_gray([staging / s.file_name(config) for s in shown], size)
        render_data_card(card, staging, sample_images=list(samples),
                         sample_labels=[config.labels.name_of(s.candidate.label) for s in shown])

    return render
