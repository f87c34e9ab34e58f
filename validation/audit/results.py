"""What an audit hands back: the per-candidate table and a summary for the data card.

The table (pyarrow) has one row per candidate: for each metric, the nearest source's
id and its distance, then the flag and the metrics that raised it. The summary holds
the counts, the thresholds in force, how the search ran (and its measured recall), and
histograms of the nearest distances on fixed bins, so releases can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from .config import AuditConfig

METRICS: tuple[str, ...] = ("phash_distance", "pixel_l2", "patch_l2", "embedding_cosine")
"""Metric names, as columns of the table and keys of every summary."""

SOURCE_COLUMN = {
    "phash_distance": "phash_source_id",
    "pixel_l2": "pixel_l2_source_id",
    "patch_l2": "patch_l2_source_id",
    "embedding_cosine": "embedding_source_id",
}

FLAG_WHEN: dict[str, Literal["<=", ">="]] = {
    "phash_distance": "<=",
    "pixel_l2": "<=",
    "patch_l2": "<=",
    "embedding_cosine": ">=",
}

_BINS: dict[str, np.ndarray] = {
    "phash_distance": np.arange(-0.5, 65.0, 1.0),  # one bin per Hamming distance 0..64
    "pixel_l2": np.linspace(0.0, 2.0, 41),
    "patch_l2": np.linspace(0.0, 4.0, 81),
    "embedding_cosine": np.linspace(-1.0, 1.0, 41),
}
"""Fixed bin edges per metric; values beyond the edges land in the end bins."""


class MetricHistogram(BaseModel):
    """Counts of one metric's nearest-source values on fixed bins, with the threshold."""

    model_config = ConfigDict(frozen=True)

    metric: str
    bin_edges: list[float]
    counts: list[int]
    threshold: float
    flag_when: Literal["<=", ">="]


class SearchReport(BaseModel):
    """How the nearest sources were found, and how well the index did against exact."""

    model_config = ConfigDict(frozen=True)

    mode_requested: Literal["exact", "index", "auto"]
    mode_used: Literal["exact", "index"]
    index: str | None = None
    """The faiss indexes and their settings, when one was used."""
    recall_sample: int = 0
    """Candidates searched both ways to measure recall (0 for exact search)."""
    recall: dict[str, float] | None = None
    """Per metric: share of sampled candidates whose exact nearest value the index found.
    Strict: for a candidate far from every source, many sources tie within a hair."""
    near_recall: dict[str, float | None] | None = None
    """The same over sampled candidates NEAR a threshold (within 1.5x its margin: pixel
    distances <= 1.5 x max, cosine >= 1 - 1.5 x (1 - min)); None where none was near.
    Near candidates decide flags, so this is what `min_index_recall` gates."""
    n_near: dict[str, int] | None = None
    flag_recall: float | None = None
    """Share of the sample's exact flags that the index also raised (None: no flags)."""
    fell_back: bool = False
    """True when auto mode measured too low a recall and redid the audit exactly."""


class AuditSummary(BaseModel):
    """Counts, thresholds, search facts and histograms: what the data card prints."""

    model_config = ConfigDict(frozen=True)

    n_candidates: int
    n_sources: int
    n_flagged: int
    flagged_by: dict[str, int]
    thresholds: dict[str, float]
    embedding: str
    search: SearchReport
    histograms: dict[str, MetricHistogram]
    seconds: float


@dataclass(frozen=True)
class AuditResult:
    """The per-candidate table (pyarrow) and its summary."""

    table: pa.Table
    summary: AuditSummary

    @property
    def flagged(self) -> np.ndarray:
        """bool [N]: which candidates are near-duplicates of some source."""
        return self.table.column("flagged").to_numpy(zero_copy_only=False)


def flag_matrix(values: dict[str, np.ndarray], config: AuditConfig) -> dict[str, np.ndarray]:
    """Per metric, bool [N]: does this candidate cross that metric's threshold?"""
    limits = config.thresholds()
    out = {}
    for metric in METRICS:
        v = values[metric]
        out[metric] = v >= limits[metric] if FLAG_WHEN[metric] == ">=" else v <= limits[metric]
    return out


def histogram(metric: str, values: np.ndarray, threshold: float) -> MetricHistogram:
    """One metric's values on its fixed bins (clipped into the end bins)."""
    edges = _BINS[metric]
    finite = values[np.isfinite(values)]
    counts, _ = np.histogram(np.clip(finite, edges[0], edges[-1]), bins=edges)
    return MetricHistogram(
        metric=metric, bin_edges=[float(e) for e in edges], counts=[int(c) for c in counts],
        threshold=float(threshold), flag_when=FLAG_WHEN[metric],
    )


def distance_histograms(table: pa.Table, config: AuditConfig) -> dict[str, MetricHistogram]:
    """Histograms of every metric in an audit table (e.g. the kept rows of a release)."""
    limits = config.thresholds()
    return {
        m: histogram(m, table.column(m).to_numpy(zero_copy_only=False).astype(np.float64),
                     limits[m])
        for m in METRICS
    }


def build_table(
    candidate_ids: list[str],
    source_ids: list[str],
    values: dict[str, np.ndarray],
    rows: dict[str, np.ndarray],
    flags: dict[str, np.ndarray],
) -> pa.Table:
    """The per-candidate table; a source row of -1 (nothing found) gets a null id."""
    cols: dict[str, pa.Array] = {
        "candidate": pa.array(np.arange(len(candidate_ids), dtype=np.int64)),
        "candidate_id": pa.array(candidate_ids, pa.string()),
    }
    for metric in METRICS:
        named = [source_ids[i] if i >= 0 else None for i in rows[metric].tolist()]
        cols[SOURCE_COLUMN[metric]] = pa.array(named, pa.string())
        dtype = pa.int32() if metric == "phash_distance" else pa.float32()
        cols[metric] = pa.array(values[metric].astype(
            np.int32 if metric == "phash_distance" else np.float32), dtype)
    any_flag = np.zeros(len(candidate_ids), dtype=bool)
    by = [[] for _ in candidate_ids]
    for metric in METRICS:
        any_flag |= flags[metric]
        for i in np.flatnonzero(flags[metric]):
            by[i].append(metric)
    cols["flagged"] = pa.array(any_flag, pa.bool_())
    cols["flagged_by"] = pa.array([",".join(b) for b in by], pa.string())
    return pa.table(cols)
