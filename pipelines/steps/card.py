"""Gathering a release's data card: counts, thresholds, distances, figures, expectations.

Everything on the card comes from this build's catalog rows, its snapshot and the staged
release; the privacy and utility figures come from `pipelines.steps.figures`, and a
figure that could not be computed arrives as None with a notice saying why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from consent import Ledger
from consent.events import utc_now
from consentgen.errors import ReleaseError
from pipelines.catalog.lineage import snapshot_candidates
from pipelines.catalog import Catalog, Snapshot
from pipelines.steps.checks import run_expectations, thresholds
from pipelines.card import (
    AuditThreshold,
    ConsentSnapshotHead,
    Counts,
    DataCard,
    DistanceDistribution,
    ExpectationsSummary,
    GeneratorInfo,
    render_data_card,
)
from pipelines.steps.eligibility import load_eligible
from pipelines.steps.figures import compute_figures
from pipelines.steps.images import load_gray
from pipelines.steps.public_manifest import GENERATOR_KIND, StagedImage
from pipelines.settings import BuildConfig
from pipelines.steps.shard_training import current_models

EXPECTATIONS_DIR = "expectations"
SAMPLE_GRID = 32


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
