"""What a release's data card may say: the pydantic model, and what it refuses.

A data card ships with every release: the consent snapshot the build honoured (ledger
head sequence and hash), the counts from sources to published images, the generator,
the near-duplicate thresholds with the distribution of every published image's
nearest-source distance (invariant 3: "by the metrics and thresholds in the release's
data card"), the calibration of those thresholds, privacy and utility figures (with the
sample sizes they rest on), every Great Expectations result, and who publishes the
dataset on what terms (`pipelines.card.dataset`). `pipelines.card.render` turns one
`DataCard` into both files.

Two rules shape the model:

* Nothing identifying can be put on it: it has no field for a source, subject or record
  id, nor for a filesystem path (the expectations link must be relative to the release).
  Labels, reasons and metric names are short keys, and metric names become file names.
* A figure that was not computed is ``None`` and prints as "not computed"; nothing is
  filled in or estimated here.
* A count of subjects, records or exclusions under k (`min_public_count`) cannot be put
  on it exactly: it must arrive as `Suppressed` (`pipelines.card.suppression`), so two
  versions' cards cannot be diffed to learn about one person. Image counts stay exact
  (see `Counts`).

The card of a release is also saved as ``card/card.json`` beside the pictures, so a
withdrawal can redraw it (`pipelines.steps.release_files`) without the build's catalog
rows; that is why it must never hold more than the card prints.
"""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.card.dataset import DatasetInfo
from pipelines.card.formatting import number
from pipelines.card.provenance import ProvenanceInfo
from pipelines.card.suppression import PublicCount, is_public
from pipelines.catalog.reasons import WithdrawalReason
from validation.release.expectations import (
    ExpectationOutcome,
    ExpectationReport,
    FailedExpectation,
)

_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_METRIC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Fraction = float


class ConsentSnapshotHead(_Model):
    """The ledger state the build honoured: ``consent_snapshot`` records it."""

    seq: int = Field(ge=0)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    snapshot_time: AwareDatetime


class Counts(_Model):
    """From sources to published images. Unknown counts stay None.

    The counts of people and their records (sources, eligible subjects and records,
    exclusions by reason, records per shard) are `PublicCount`: under k they are
    suppressed. The image counts (candidates, flagged, replaced, published) are exact:
    the release's manifest and ``WITHDRAWN`` list every image anyway, and a DDPM shard
    model's images all go when any one of its subjects withdraws, so a change in them
    tells that a shard was withdrawn, not how many subjects or records were behind it.
    """

    sources_total: PublicCount | None = None
    eligible_subjects: PublicCount | None = None
    eligible_records: PublicCount | None = None
    excluded_by_reason: dict[str, PublicCount] | None = None
    """Records left out, keyed by their `pipelines.catalog.reasons.ExclusionReason` value
    (the one list of reasons), as the eligibility step counts them. A public card lists
    every reason, zero included (suppressed like the others), so that a reason appearing
    does not itself tell that someone now has it."""
    shards: int | None = Field(None, ge=1)
    """K, the number of SISA shards."""
    records_per_shard: list[PublicCount] | None = None
    """Training records of shard 0..K-1."""
    candidates_generated: int | None = Field(None, ge=0)
    flagged: int | None = Field(None, ge=0)
    replaced: int | None = Field(None, ge=0)
    published_per_label: dict[str, int] | None = None

    @field_validator("excluded_by_reason", "published_per_label")
    @classmethod
    def _keys(cls, value: dict[str, PublicCount] | None) -> dict[str, PublicCount] | None:
        if value is not None:
            for key, count in value.items():
                if not re.match(_KEY, key):
                    raise ValueError(f"key {key!r} must be a short name ({_KEY})")
                if isinstance(count, int) and count < 0:
                    raise ValueError(f"count for {key!r} is negative")
        return value

    @model_validator(mode="after")
    def _shards(self) -> Counts:
        if self.records_per_shard is not None:
            if any(isinstance(n, int) and n < 0 for n in self.records_per_shard):
                raise ValueError("records_per_shard has a negative count")
            if self.shards is not None and len(self.records_per_shard) != self.shards:
                raise ValueError(
                    f"records_per_shard has {len(self.records_per_shard)} entries, "
                    f"shards is {self.shards}"
                )
        return self

    @property
    def published_total(self) -> int | None:
        """Sum over labels, when the per-label counts are known."""
        if self.published_per_label is None:
            return None
        return sum(self.published_per_label.values())

    def of_people(self) -> dict[str, PublicCount | None]:
        """Every count here that describes subjects or their records, by a readable name."""
        found: dict[str, PublicCount | None] = {
            "sources_total": self.sources_total, "eligible_subjects": self.eligible_subjects,
            "eligible_records": self.eligible_records}
        found |= {f"excluded_by_reason[{k}]": v for k, v in (self.excluded_by_reason or {}).items()}
        found |= {f"records_per_shard[{i}]": v for i, v in enumerate(self.records_per_shard or [])}
        return found


class GeneratorInfo(_Model):
    """How the images were made."""

    kind: str = Field(pattern=_KEY)
    """``ddpm`` or ``img2img``."""
    preset: str | None = None
    image_size: tuple[int, int] | None = None
    """(width, height) of the published images."""
    epochs: int | None = Field(None, ge=0)
    sampling_steps: int | None = Field(None, ge=1)
    dp_epsilon: float | None = Field(None, gt=0)
    """DP-SGD budget; None means trained WITHOUT differential privacy (not "unknown")."""
    dp_delta: float | None = Field(None, gt=0, lt=1)
    model_versions: list[str] = []


class AuditThreshold(_Model):
    """One metric's threshold and which side of it a published image lies on.

    ``direction`` as in `validation.release.expectations.Direction`: ``"min"`` = published
    values are strictly above the threshold (distances), ``"max"`` = strictly below
    (similarities, e.g. the embedding cosine).
    """

    direction: Literal["min", "max"]
    value: float

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("threshold must be finite")
        return value

    def shipped_rule(self) -> str:
        """E.g. '> 4' for a distance: what every published value satisfies."""
        return f"{'>' if self.direction == 'min' else '<'} {number(self.value)}"

    def flag_rule(self) -> str:
        """E.g. '<= 4': when the audit calls a candidate a near-duplicate."""
        return f"{'<=' if self.direction == 'min' else '>='} {number(self.value)}"


class DistanceDistribution(_Model):
    """Nearest-source value of every published image under one metric.

    Either the raw values (one per published image) or a histogram on fixed bins (as the
    audit summary holds it), or both; the plot uses the values when present.
    """

    values: list[float] | None = None
    bin_edges: list[float] | None = None
    counts: list[int] | None = None

    @model_validator(mode="after")
    def _some_data(self) -> DistanceDistribution:
        if self.values is None and self.bin_edges is None:
            raise ValueError("give the values, or bin_edges with counts")
        if (self.bin_edges is None) != (self.counts is None):
            raise ValueError("bin_edges and counts go together")
        if self.bin_edges is not None and len(self.bin_edges) != len(self.counts or []) + 1:
            raise ValueError("bin_edges must have one more entry than counts")
        return self

    def stats(self) -> dict[str, float | int] | None:
        """n, min, median, max of the finite values (None without raw values)."""
        if self.values is None:
            return None
        arr = np.asarray(self.values, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            return {"n": 0}
        return {"n": int(arr.size), "min": float(arr.min()), "median": float(np.median(arr)),
                "max": float(arr.max())}


class CalibrationRates(_Model):
    """How well the thresholds catch known copies and spare different images."""

    detection_rate: dict[str, Fraction | None] = {}
    """Per transform (crop, flip, noise, brightness, jpeg): share of copies flagged."""
    false_positive_rate: Fraction | None = Field(None, ge=0, le=1)
    n_positives: int | None = Field(None, ge=0)
    """Known copies audited, all transforms together."""
    n_per_transform: int | None = Field(None, ge=0)
    n_negatives: int | None = Field(None, ge=0)
    """Different images audited (sources of other subjects, held out of the reference)."""

    @field_validator("detection_rate")
    @classmethod
    def _rates(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        for key, rate in value.items():
            if not re.match(_KEY, key):
                raise ValueError(f"transform {key!r} must be a short name")
            if rate is not None and not 0 <= rate <= 1:
                raise ValueError(f"detection rate of {key!r} must lie in [0, 1]")
        return value


class PrivacyFigures(_Model):
    """Distance to closest record (DCR) and membership inference."""

    dcr_closer_to_train_share: Fraction | None = Field(None, ge=0, le=1)
    """Share of synthetic images closer to a training source than to a held-out one;
    far above 0.5 signals memorisation."""
    dcr_ratio: float | None = Field(None, ge=0)
    """Median synthetic-to-train DCR over median holdout-to-train DCR."""
    n_synthetic: int | None = Field(None, ge=0)
    """Images compared: those published at publish time (not redrawn on withdrawal)."""
    n_train: PublicCount | None = None
    n_holdout: PublicCount | None = None
    membership_auc: Fraction | None = Field(None, ge=0, le=1)
    """ROC AUC of a loss-based membership-inference attack; 0.5 = no signal."""
    mia_n_members: PublicCount | None = None
    """Training records the attack was scored on (of one shard's model)."""
    mia_n_nonmembers: PublicCount | None = None
    """Held-out records it was scored on."""


class UtilityFigures(_Model):
    """Train-synthetic-test-real next to train-real-test-real."""

    tstr_accuracy: Fraction | None = Field(None, ge=0, le=1)
    trtr_accuracy: Fraction | None = Field(None, ge=0, le=1)
    n_test: PublicCount | None = None
    """Held-out consented records: records of subjects, so suppressed under k."""
    n_train_synthetic: int | None = Field(None, ge=0)
    """Published images the TSTR classifier was trained on."""
    n_train_real: PublicCount | None = None
    """Training records the TRTR classifier was trained on."""
    chance_accuracy: Fraction | None = Field(None, ge=0, le=1)
    """Share of the most frequent class among the test records: what guessing scores."""
    classifier: str | None = None


class ExpectationsSummary(_Model):
    """A Great Expectations suite's outcome, with a release-relative docs link."""

    suite_name: str
    success: bool
    evaluated: int = Field(ge=0)
    successful: int = Field(ge=0)
    failed: list[FailedExpectation] = []
    results: list[ExpectationOutcome] = []
    """Every expectation with its column, passed or not, and the observed value."""
    docs_link: str | None = None
    """The suite's validation page, ``expectations/release_manifest/index.html``,
    relative to the release folder."""

    @field_validator("docs_link")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None:
            path = PurePosixPath(value)
            if path.is_absolute() or ".." in path.parts or "\\" in value or ":" in value:
                raise ValueError("docs_link must be a relative path inside the release")
        return value

    @classmethod
    def from_report(cls, report: ExpectationReport, release_dir: Path) -> ExpectationsSummary:
        """The summary of `report`, its docs linked relative to `release_dir`.

        Docs outside the release folder get no link (an absolute path would name the
        deployment's file system in a public file).
        """
        link = None
        if report.docs_index is not None:
            try:
                rel = Path(report.docs_index).resolve().relative_to(Path(release_dir).resolve())
                link = rel.as_posix()
            except ValueError:
                link = None
        return cls(
            suite_name=report.suite_name, success=report.success, evaluated=report.evaluated,
            successful=report.successful, failed=list(report.failed),
            results=list(report.results), docs_link=link,
        )


class WithdrawalLine(_Model):
    """"Withdrawn: N images on DATE (reason class)": one per reason class and UTC day.

    Only the day and the class ship, never the time, a subject or the operator's note; N
    is suppressed under k like the counts of people (a line could stand for one person).
    """

    images: PublicCount
    on: date
    reason: WithdrawalReason | None
    """None: a withdrawal recorded before reasons were (issue 11)."""


class DataCard(_Model):
    """Everything the data card prints; see the module docstring for the rules."""

    version: str = Field(pattern=r"^v\d{4,}$")
    created_at: AwareDatetime
    profile: Literal["demo", "test"] | None = None
    """The build file's preset; ``test`` (tiny models) puts a "not for publication" banner
    on the card."""
    dataset: DatasetInfo = DatasetInfo()
    """Controller, contact, licence, legal basis, uses, withdrawal: the build file's
    ``[dataset]``."""
    consent: ConsentSnapshotHead
    purpose: str = Field(min_length=1, max_length=200)
    counts: Counts = Counts()
    generator: GeneratorInfo
    thresholds: dict[str, AuditThreshold]
    distances: dict[str, DistanceDistribution] = {}
    calibration: CalibrationRates | None = None
    privacy: PrivacyFigures = PrivacyFigures()
    utility: UtilityFigures = UtilityFigures()
    expectations: list[ExpectationsSummary] = []
    notices: list[str] = []
    """Shown first, e.g. that the demo's subjects and consent are SIMULATED."""
    expiry_policy: Literal["withdraw", "keep"]
    """What this release does when a grant expires (`BuildConfig.expiry_policy`)."""
    withdrawals: list[WithdrawalLine] = []
    """Filled in when images are withdrawn from the published release."""
    min_public_count: int = Field(10, ge=1)
    """k: counts of people under it must arrive `Suppressed`."""
    provenance: ProvenanceInfo | None = None
    """What every image carries and who signed it (`pipelines.card.provenance`); None on a
    card published before images were stamped."""

    @model_validator(mode="after")
    def _public_counts(self) -> DataCard:
        k = self.min_public_count
        counts = self.counts.of_people() | {
            "privacy.n_train": self.privacy.n_train, "privacy.n_holdout": self.privacy.n_holdout,
            "privacy.mia_n_members": self.privacy.mia_n_members,
            "privacy.mia_n_nonmembers": self.privacy.mia_n_nonmembers,
            "utility.n_test": self.utility.n_test, "utility.n_train_real": self.utility.n_train_real}
        counts |= {f"withdrawals[{i}].images": w.images for i, w in enumerate(self.withdrawals)}
        exposed = sorted(name for name, value in counts.items() if not is_public(value, k))
        if exposed:
            raise ValueError(f"counts under k = {k} must be suppressed (public_count): "
                             f"{', '.join(exposed)}")
        return self

    @model_validator(mode="after")
    def _metrics(self) -> DataCard:
        for metric in [*self.thresholds, *self.distances]:
            if not _METRIC.match(metric):
                raise ValueError(f"metric name {metric!r} must match {_METRIC.pattern}")
        missing = sorted(set(self.distances) - set(self.thresholds))
        if missing:
            raise ValueError(f"distances without a threshold: {missing}")
        return self
