"""Cards to render: one with every figure given, one with only what a card must have."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import numpy as np

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
)
from pipelines.catalog.reasons import ExclusionReason
from tests.validation.release.conftest import SIZE, THRESHOLDS

HEAD_HASH = hashlib.sha256(b"ledger head 1234").hexdigest()
THRESHOLD_RED = (196, 78, 82)  # the colour the threshold line is drawn in


def thresholds() -> dict[str, AuditThreshold]:
    return {m: AuditThreshold(direction=d, value=v) for m, (d, v) in THRESHOLDS.items()}


def base_card(**overrides: object) -> DataCard:
    fields: dict[str, object] = {
        "version": "v0003",
        "created_at": datetime(2025, 3, 4, 12, 30, tzinfo=UTC),
        "consent": ConsentSnapshotHead(seq=1234, hash=HEAD_HASH,
                                       snapshot_time=datetime(2025, 3, 4, 12, 0, tzinfo=UTC)),
        "purpose": "synthetic-training",
        "generator": GeneratorInfo(kind="ddpm"),
        "thresholds": thresholds(),
        "expiry_policy": "withdraw",
    }
    fields.update(overrides)
    return DataCard(**fields)


def full_card(rng: np.random.Generator, expectations: list[ExpectationsSummary]) -> DataCard:
    n = 400
    return base_card(
        counts=Counts(
            sources_total=3000, eligible_subjects=812, eligible_records=2436,
            excluded_by_reason={ExclusionReason.NO_RECORD: 301, ExclusionReason.WITHDRAWN: 88,
                                ExclusionReason.EXPIRED: 175},
            shards=4, records_per_shard=[611, 602, 617, 606], candidates_generated=431,
            flagged=31, replaced=31, published_per_label={"0": 200, "1": 200},
        ),
        generator=GeneratorInfo(kind="ddpm", preset="small", image_size=SIZE, epochs=12,
                                sampling_steps=25, dp_epsilon=8.0, dp_delta=1e-5,
                                model_versions=["shard0-v1", "shard1-v1"]),
        distances={
            "phash_distance": DistanceDistribution(values=rng.integers(5, 40, n).tolist()),
            "pixel_l2": DistanceDistribution(values=rng.uniform(0.35, 1.4, n).tolist()),
            "patch_l2": DistanceDistribution(values=rng.uniform(0.5, 2.5, n).tolist()),
            "embedding_cosine": DistanceDistribution(
                bin_edges=np.linspace(-1, 1, 41).tolist(), counts=[0] * 20 + [21] * 19 + [1],
            ),
        },
        calibration=CalibrationRates(
            detection_rate={"crop": 0.91, "flip": 1.0, "noise": 0.985, "brightness": 0.97,
                            "jpeg": 0.995},
            false_positive_rate=0.012, n_positives=500, n_per_transform=100, n_negatives=500,
        ),
        privacy=PrivacyFigures(dcr_closer_to_train_share=0.512, dcr_ratio=1.07,
                               n_synthetic=400, n_train=2000, n_holdout=436,
                               membership_auc=0.531, mia_n_members=256, mia_n_nonmembers=256),
        utility=UtilityFigures(tstr_accuracy=0.81, trtr_accuracy=0.93, n_test=436,
                               n_train_synthetic=400, n_train_real=2000, chance_accuracy=0.5,
                               classifier="small CNN, 3 epochs"),
        expectations=expectations,
        notices=["Subjects and consent are SIMULATED (demo on Br35H)."],
    )


def samples(rng: np.random.Generator, n: int = 12) -> tuple[list[np.ndarray], list[int]]:
    images = [rng.integers(0, 256, SIZE[::-1], dtype=np.uint8) for _ in range(n)]
    return images, [i % 2 for i in range(n)]


def md_links(md: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", md)
