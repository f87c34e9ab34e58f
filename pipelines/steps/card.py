"""Gathering a release's data card: counts, thresholds, distances, figures, expectations.

Figures are computed at publish time from the build's own records (consented training
and holdout records only) and never invented: a figure that cannot be computed (too few
holdout records, one class only) is left as None, which the card prints as "not computed",
with a notice saying why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from consent import Ledger
from consent.events import utc_now
from consentgen.errors import AuditError, ConsentgenError, ReleaseError
from pipelines.steps.audit import audit_config
from pipelines.steps.candidates import snapshot_candidates
from pipelines.catalog import Catalog, ShardModel, Snapshot
from pipelines.steps.checks import run_expectations, thresholds
from pipelines.card import (
    AuditThreshold,
    CalibrationRates,
    ConsentSnapshotHead,
    Counts,
    DataCard,
    DistanceDistribution,
    ExpectationsSummary,
    GeneratorInfo,
    PrivacyFigures,
    UtilityFigures,
    render_data_card,
)
from pipelines.steps.eligibility import load_eligible
from pipelines.steps.images import load_gray
from pipelines.steps.public_manifest import GENERATOR_KIND, StagedImage
from pipelines.settings import BuildConfig
from pipelines.steps.shard_training import current_models, load_model

EXPECTATIONS_DIR = "expectations"
SAMPLE_GRID = 32


def _pixels(catalog: Catalog, by_id: dict[str, Any], record_ids: list[str], size: int) -> np.ndarray:
    return load_gray([catalog.home / by_id[r].image_path for r in record_ids], size)


def compute_figures(catalog: Catalog, snapshot: Snapshot, config: BuildConfig,
                    staged: list[StagedImage], models: dict[int, ShardModel]
                    ) -> tuple[PrivacyFigures, UtilityFigures, CalibrationRates | None, list[str]]:
    """DCR, membership inference, TSTR and calibration, each only where it can be computed."""
    from validation.audit import calibrate
    from validation.audit.privacy import dcr_figures, membership_inference_auc
    from validation.audit.utility import tstr_figures

    size = config.generator.image_size
    sources = catalog.sources()
    by_id = {s.record_id: s for s in sources}
    eligible = load_eligible(catalog, snapshot.snapshot_id)
    train, holdout = eligible.by_role("train"), eligible.by_role("holdout")
    synthetic = load_gray([catalog.home / s.candidate.image_path for s in staged], size)
    syn_labels = np.array([s.candidate.label for s in staged])
    train_px = _pixels(catalog, by_id, [r.record_id for r in train], size)
    hold_px = _pixels(catalog, by_id, [r.record_id for r in holdout], size)
    notes: list[str] = []
    privacy: dict[str, Any] = {}
    utility: dict[str, Any] = {}
    calibration = None
    figures = config.figures
    if figures.dcr:
        try:
            dcr = dcr_figures(synthetic, train_px, hold_px, seed=config.seed)
            privacy.update(dcr_closer_to_train_share=dcr.share_closer_to_train, dcr_ratio=dcr.dcr_ratio,
                           n_synthetic=dcr.n_synthetic, n_train=dcr.n_train, n_holdout=dcr.n_holdout)
        except AuditError as exc:
            notes.append(f"DCR not computed: {exc}")
    if figures.membership_inference and models and holdout:
        shard, model = max(models.items(), key=lambda kv: kv[1].n_records)
        members = [r for r in train if r.shard == shard][: figures.mia_max_records]
        others = holdout[: figures.mia_max_records]
        try:
            from generators.membership import per_sample_loss

            generator = load_model(catalog, model)
            args = {"timestep": figures.mia_timestep, "seed": config.seed}
            m = per_sample_loss(generator, _pixels(catalog, by_id, [r.record_id for r in members], size),
                                np.array([r.label for r in members]), **args)
            o = per_sample_loss(generator, _pixels(catalog, by_id, [r.record_id for r in others], size),
                                np.array([r.label for r in others]), **args)
            privacy["membership_auc"] = membership_inference_auc(m, o)
        except ConsentgenError as exc:
            notes.append(f"membership inference not computed: {exc}")
    elif figures.membership_inference:
        notes.append("membership inference not computed: no held-out consented records")
    if figures.utility and len(holdout):
        try:
            tstr = tstr_figures(synthetic, syn_labels, train_px, np.array([r.label for r in train]),
                                hold_px, np.array([r.label for r in holdout]), seed=config.seed,
                                epochs=figures.utility_epochs)
            utility.update(tstr_accuracy=tstr.tstr_accuracy, trtr_accuracy=tstr.trtr_accuracy,
                           n_test=len(holdout), classifier="small CNN (validation.audit.utility)")
        except AuditError as exc:
            notes.append(f"utility not computed: {exc}")
    if figures.calibration:
        sample = sources[: figures.calibration_sources]
        try:
            report = calibrate(load_gray([catalog.home / s.image_path for s in sample], size),
                               audit_config(config), seed=config.seed,
                               groups=[s.subject_id for s in sample],
                               n_positives=max(4, len(sample) // 4), n_negatives=max(2, len(sample) // 4))
            calibration = CalibrationRates(
                detection_rate={k: v.detected for k, v in report.detection.items()},
                false_positive_rate=report.false_positive_rate,
                n_positives=sum(v.n for v in report.detection.values()),
                n_negatives=report.n_negatives)
        except AuditError as exc:
            notes.append(f"calibration not computed: {exc}")
    return PrivacyFigures(**privacy), UtilityFigures(**utility), calibration, notes


def card_renderer(catalog: Catalog, ledger: Ledger, snapshot: Snapshot, config: BuildConfig
                  ) -> Callable[[Path, str, pd.DataFrame, list[StagedImage]], None]:
    """What `publish_release` calls inside the staging folder, before it becomes visible."""

    def render(staging: Path, version: str, manifest: pd.DataFrame, staged: list[StagedImage]) -> None:
        reports = run_expectations(catalog, staged, config, docs_dir=staging / EXPECTATIONS_DIR)
        failed = [r for r in reports if not r.success]
        if failed:
            raise ReleaseError(f"expectations failed: {', '.join(r.suite_name for r in failed)}")
        models = current_models(catalog, snapshot, config)
        privacy, utility, calibration, notes = compute_figures(catalog, snapshot, config, staged, models)
        eligible = load_eligible(catalog, snapshot.snapshot_id)
        all_candidates = snapshot_candidates(catalog, snapshot.snapshot_id)
        limits = thresholds(config)
        size = config.generator.image_size
        card = DataCard(
            version=version,
            created_at=utc_now(),
            consent=ConsentSnapshotHead(seq=snapshot.head_seq, hash=snapshot.head_hash,
                                        snapshot_time=snapshot.taken_at),
            purpose=snapshot.purpose,
            counts=Counts(
                sources_total=len(catalog.sources()),
                eligible_subjects=len({r.subject_id for r in eligible.records}),
                eligible_records=len(eligible.records),
                excluded_by_reason=eligible.exclusion_counts(),
                shards=config.shards,
                records_per_shard=[eligible.shard_counts().get(s, 0) for s in range(config.shards)],
                candidates_generated=len(all_candidates),
                flagged=len(all_candidates) - len(staged),
                replaced=len(all_candidates) - config.images_per_shard * len(models),
                published_per_label=dict(Counter(config.label_name(s.candidate.label) for s in staged)),
            ),
            generator=GeneratorInfo(
                kind=GENERATOR_KIND, preset=config.generator.preset, image_size=(size, size),
                epochs=config.generator.epochs, sampling_steps=config.generator.sample_steps,
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
        )
        order = np.random.default_rng(config.seed).permutation(len(staged))[:SAMPLE_GRID]
        samples = load_gray([staging / staged[i].file_name(config) for i in order], size)
        render_data_card(card, staging, sample_images=list(samples),
                         sample_labels=[config.label_name(staged[i].candidate.label) for i in order])

    return render
