"""The data card formatted once: every figure as the text both templates print.

A `CardView` holds the tables as rows of text and the pictures as files and data URIs;
``templates/data_card.md.j2`` and ``templates/data_card.html.j2`` only lay it out
(`pipelines.card.render`). A missing figure is `NOT_COMPUTED`; a suppressed count is
"< k" (`pipelines.card.suppression`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.card.assessment import HEAD as ASSESSMENT_HEAD
from pipelines.card.assessment import assessments, legend
from pipelines.card.dataset import dataset_rows
from pipelines.card.formatting import NOT_COMPUTED, count, number, timestamp
from pipelines.card.model import AuditThreshold, DataCard, DistanceDistribution, WithdrawalLine
from pipelines.card.provenance import ProvenanceView, provenance_view
from pipelines.card.suppression import Suppressed

CARD_FOLDER = "card"
"""Subfolder (beside ``data_card.md``) that holds the PNGs the Markdown links."""
SAMPLES_FILE = f"{CARD_FOLDER}/samples.png"

_AUDIT_PROMISE = (
    "No published image is a near-duplicate of any source under these metrics and "
    "thresholds (each compares the image with its nearest source). The audit and its "
    "calibration compare against every ingested source, consenting or not (revoked or "
    "never asked too; erased records excepted, as they are no longer held): that is what "
    "stops a copy of anyone's image, not only of a training subject's, from shipping."
)
_THRESHOLD_HEAD = ("Metric", "Threshold", "Audit rule", "Published images",
                   "Nearest-source distances")
_EXPIRY = {
    "withdraw": "withdraw (images standing on a subject whose grant expired are withdrawn)",
    "keep": "keep (images made while consent held stay published after the grant expires)",
}
_AFTER_WITHDRAWAL = (
    "Counts, distances and pictures on this card describe the images still published; "
    "the privacy and utility figures and the Great Expectations results are from "
    "publish, over the images published then. The withdrawn images' ids are listed in "
    "WITHDRAWN."
)
TEST_BANNER = (
    "TEST BUILD — NOT FOR PUBLICATION. Built with the test preset (tiny models, few "
    "images, small samples): its figures show the pipeline runs, not what a real build "
    "would give."
)
_EXPECTATION_HEAD = ("Suite", "Expectation", "Column", "Passed", "Observed value")
_NO_WITHDRAWAL = "No image has been withdrawn from this release."
_NO_SAMPLES = "no samples given"
_NONE_LEFT = "No image of this release is still published: every one was withdrawn."

Row = tuple[str, ...]


@dataclass(frozen=True)
class Section:
    """A titled key/value table."""

    title: str
    rows: list[Row]


@dataclass(frozen=True)
class Picture:
    """A PNG of the card: linked as `file` from the Markdown, embedded as `data_uri` in HTML."""

    alt: str
    caption: str
    file: str
    data_uri: str


@dataclass(frozen=True)
class Failure:
    type: str
    column: str | None
    reason: str


@dataclass(frozen=True)
class Suite:
    """One Great Expectations suite's outcome, in words."""

    name: str
    status: str
    successful: int
    evaluated: int
    docs_link: str | None
    failed: list[Failure]


@dataclass(frozen=True)
class CardView:
    """Everything both templates print, already formatted."""

    version: str
    created: str
    banner: str | None
    """The test build's "not for publication" line, else None."""
    notices: list[str]
    dataset: Section
    sections: list[Section]
    assessment_head: Row
    assessment_rows: list[Row]
    """Figure, value, reference, flag, sample, meaning (`pipelines.card.assessment`)."""
    assessment_legend: str
    audit_promise: str
    threshold_head: Row
    threshold_rows: list[Row]
    histograms: list[Picture]
    suites: list[Suite]
    expectation_head: Row
    expectation_rows: list[Row]
    samples: Picture | None
    samples_note: str
    """What the samples section says when there is no grid."""
    withdrawals: list[str]
    withdrawals_note: str
    provenance: ProvenanceView
    """What each image carries, who signed it, how to verify (`pipelines.card.provenance`)."""



def _listing(items: Sequence[tuple[object, int | Suppressed]]) -> str:
    return ", ".join(f"{k}: {count(v)}" for k, v in items)


def _suppression(k: int) -> str:
    if k <= 1:
        return "1 (no count is suppressed)"
    return f"{k:,} (smaller counts of subjects, records or exclusions print as \"< {k:,}\")"


def withdrawal_text(line: WithdrawalLine) -> str:
    """'Withdrawn: N images on DATE (reason class)'."""
    n = "1 image" if line.images == 1 else f"{count(line.images)} images"
    reason = line.reason.value if line.reason is not None else "reason not recorded"
    return f"Withdrawn: {n} on {line.on.isoformat()} ({reason})"


def _sections(card: DataCard) -> list[Section]:
    """The card's key/value tables, in print order."""
    c = card.counts
    g = card.generator
    excluded = (NOT_COMPUTED if c.excluded_by_reason is None else
                _listing(sorted(c.excluded_by_reason.items())) or "none")
    per_shard = (NOT_COMPUTED if c.records_per_shard is None else
                 _listing(list(enumerate(c.records_per_shard))))
    per_label = (NOT_COMPUTED if c.published_per_label is None else
                 _listing(sorted(c.published_per_label.items())))
    if g.dp_epsilon is None:
        dp = "none (trained without differential privacy)"
    else:
        dp = f"ε = {number(g.dp_epsilon)}" + (f", δ = {g.dp_delta:.1e}" if g.dp_delta else "")
    size = NOT_COMPUTED if g.image_size is None else f"{g.image_size[0]}×{g.image_size[1]}"
    return [
        Section("Consent snapshot", [
            ("Purpose", card.purpose),
            ("Ledger head sequence", str(card.consent.seq)),
            ("Ledger head hash", card.consent.hash),
            ("Snapshot time", timestamp(card.consent.snapshot_time)),
            ("Expiry policy", _EXPIRY[card.expiry_policy]),
        ]),
        Section("Counts", [
            ("Source records (all)", count(c.sources_total)),
            ("Eligible subjects", count(c.eligible_subjects)),
            ("Eligible records", count(c.eligible_records)),
            ("Excluded records by reason", excluded),
            ("Shards (K)", count(c.shards)),
            ("Training records per shard", per_shard),
            ("Candidates generated", count(c.candidates_generated)),
            ("Flagged as near-duplicates", count(c.flagged)),
            ("Replaced", count(c.replaced)),
            ("Published images", count(c.published_total)),
            ("Published images per label", per_label),
            ("Smallest count of people shown", _suppression(card.min_public_count)),
        ]),
        Section("Generator", [
            ("Kind", g.kind),
            ("Preset", g.preset or NOT_COMPUTED),
            ("Image size", size),
            ("Epochs", count(g.epochs)),
            ("Sampling steps", count(g.sampling_steps)),
            ("Differential privacy", dp),
            ("Model versions", ", ".join(g.model_versions) or NOT_COMPUTED),
        ]),
    ]


def _crossing(dist: DistanceDistribution, t: AuditThreshold) -> int | None:
    """How many published values lie on the flagged side (None: only binned data)."""
    if dist.values is None:
        return None
    arr = np.asarray(dist.values, dtype=np.float64)
    bad = arr <= t.value if t.direction == "min" else arr >= t.value
    return int(np.count_nonzero(bad | ~np.isfinite(arr)))


def _distance_summary(dist: DistanceDistribution | None, t: AuditThreshold) -> str:
    """Evidence for the promise; a crossing is printed, never hidden."""
    if dist is None:
        return NOT_COMPUTED
    stats = dist.stats()
    if stats is None:  # histogram only
        counts = np.asarray(dist.counts, dtype=np.int64)
        edges = dist.bin_edges or []
        nz = np.flatnonzero(counts)
        if nz.size == 0:
            return "n=0 (binned)"
        return (f"n={int(counts.sum()):,} (binned), between {number(edges[nz[0]])} "
                f"and {number(edges[nz[-1] + 1])}")
    if stats["n"] == 0:
        return "n=0"
    text = (f"n={stats['n']:,}, min {number(stats['min'])}, median {number(stats['median'])}, "
            f"max {number(stats['max'])}")
    crossing = _crossing(dist, t)
    if crossing:
        text += f"; WARNING: {crossing} value(s) on the flagged side"
    return text


def _threshold_rows(card: DataCard) -> list[Row]:
    return [(metric, number(t.value), f"flagged when {t.flag_rule()}",
             f"must be {t.shipped_rule()}", _distance_summary(card.distances.get(metric), t))
            for metric, t in sorted(card.thresholds.items())]


def _expectation_rows(card: DataCard) -> list[Row]:
    """Every expectation of every suite: what the validation pages show, on the card."""
    return [(s.suite_name, r.type, r.column or "(table)", "yes" if r.success else "NO",
             r.observed) for s in card.expectations for r in s.results]


def _suites(card: DataCard) -> list[Suite]:
    return [Suite(name=s.suite_name, status="passed" if s.success else "FAILED",
                  successful=s.successful, evaluated=s.evaluated, docs_link=s.docs_link,
                  failed=[Failure(f.type, f.column, f.reason) for f in s.failed])
            for s in card.expectations]


def picture(alt: str, caption: str, file: str, png: bytes) -> Picture:
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return Picture(alt=alt, caption=caption, file=file, data_uri=uri)


def card_view(card: DataCard, histograms: list[Picture], samples: Picture | None) -> CardView:
    """The one formatted view both templates print."""
    return CardView(
        version=card.version,
        created=timestamp(card.created_at),
        banner=TEST_BANNER if card.profile == "test" else None,
        notices=list(card.notices),
        dataset=Section("Dataset and responsibilities", dataset_rows(card.dataset)),
        sections=_sections(card),
        assessment_head=ASSESSMENT_HEAD,
        assessment_rows=[a.row() for a in assessments(card)],
        assessment_legend=legend(),
        audit_promise=_AUDIT_PROMISE,
        threshold_head=_THRESHOLD_HEAD,
        threshold_rows=_threshold_rows(card),
        histograms=histograms,
        suites=_suites(card),
        expectation_head=_EXPECTATION_HEAD,
        expectation_rows=_expectation_rows(card),
        samples=samples,
        samples_note=_NONE_LEFT if card.withdrawals else _NO_SAMPLES,
        withdrawals=[withdrawal_text(w) for w in card.withdrawals],
        withdrawals_note=_AFTER_WITHDRAWAL if card.withdrawals else _NO_WITHDRAWAL,
        provenance=provenance_view(card.provenance),
    )

