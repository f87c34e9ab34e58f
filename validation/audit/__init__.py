"""Memorisation audit, privacy and utility figures (issue 6; DESIGN.md invariant 3).

No published image may be a near-duplicate of ANY source image. This package compares
generated candidates with every source under four metrics, drops and replaces the ones
that cross a threshold, and computes the privacy and utility figures of the data card.
It imports numpy, scipy, torch, faiss, Pillow, pyarrow, pydantic and `consentgen.errors`
only: never Dagster, DuckDB, `pipelines`, `consent` or `generators`.

Inputs are uint8 image arrays, [N, H, W] or [N, H, W, C], all of one size (the
normalised sources' size), plus ids. Every metric works on luminance.

Public API (what the Dagster layer calls):

Near-duplicate audit
    AuditConfig                      thresholds per metric, search mode, embedding model
    audit_candidates(candidates, sources, source_ids, config=None, candidate_ids=None)
        -> AuditResult               .table (pyarrow, one row per candidate: nearest
                                     source id and value per metric, flagged, flagged_by),
                                     .summary (AuditSummary: counts, thresholds, search
                                     report with index recall, histograms), .flagged
    AuditIndex.build(sources, source_ids, config=None) -> AuditIndex
        .audit(candidates, candidate_ids=None) -> AuditResult   (sources prepared once)
    replace_near_duplicates(sample_fn, index, slots, *, max_replacement_rounds=3,
                            on_round=None) -> ReplacementOutcome
        sample_fn(open_slots, round) -> Batch(ids, images): one candidate per open slot,
        with the caller's ids; round 0 draws every slot, later rounds the flagged ones.
        on_round(table) sees each round's rows as soon as they are audited.
        ReplacementOutcome: kept_ids, kept, table (audit rows + slot, round, kept),
        summary (round 0), rounds, n_flagged, replaced, replacement_rounds
        raises consentgen.errors.ReplacementExhaustedError naming the flagged count
    distance_histograms(table, config) -> dict[str, MetricHistogram]

Calibration
    calibrate(sources, config=None, seed=0, *, groups=None, source_ids=None,
              n_positives=100, n_negatives=200, params=None) -> CalibrationReport
    transform_images(images, transform, seed=0, params=None)   crop|flip|noise|brightness|jpeg
    duplicate_groups(images, max_pixel_l2=0.4, mirrored=True) -> int64 [N] group labels

Privacy
    dcr_figures(synthetic, train, holdout, seed=0) -> DcrFigures
        (.model_dump(): share_closer_to_train, dcr_ratio, n_synthetic, n_train,
         n_holdout, n_balanced, median_synthetic_dcr, median_holdout_dcr, metric)
    membership_inference_auc(member_losses, nonmember_losses) -> float

Utility
    tstr_figures(synthetic, synthetic_labels, train_real, train_labels, test_real,
                 test_labels, seed=0, epochs=15) -> TstrFigures
        (.model_dump(): tstr_accuracy, trtr_accuracy, tstr_over_trtr, chance_accuracy, ...)

Metrics (table columns; a candidate is flagged when ANY crosses its threshold):
    phash_distance    64-bit pHash Hamming distance (bits identical to imagehash), <= max
    pixel_l2          RMS difference of the standardised images, <= max
    patch_l2          tile-wise max of that RMS (Carlini et al. 2023), <= max
    embedding_cosine  flip-matched cosine of a TorchScript model's embedding, or of the
                      built-in DCT-PCA embedding with region descriptors, >= min
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Loaded on first use, like `generators`: the build settings name `AuditConfig`, and
# reading them (the CLI, the catalog) must not import torch and faiss.
_EXPORTS = {
    "AuditIndex": "audit", "audit_candidates": "audit",
    "TRANSFORMS": "calibration", "CalibrationReport": "calibration",
    "TransformDetection": "calibration", "TransformParams": "calibration",
    "calibrate": "calibration", "transform_images": "calibration",
    "AuditConfig": "config",
    "duplicate_groups": "grouping",
    "DcrFigures": "privacy", "dcr_figures": "privacy", "membership_inference_auc": "privacy",
    "Batch": "replacement", "ReplacementOutcome": "replacement",
    "replace_near_duplicates": "replacement",
    "METRICS": "results", "AuditResult": "results", "AuditSummary": "results",
    "MetricHistogram": "results", "SearchReport": "results", "distance_histograms": "results",
    "TstrFigures": "utility", "tstr_figures": "utility",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
