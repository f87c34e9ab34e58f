"""The release's data card: what a release promised, what it did, and what is unknown.

A data card ships with every release (``data_card.md`` + ``data_card.html``): the
consent snapshot the build honoured (ledger head sequence and hash), the counts from
sources to published images, the generator, the near-duplicate thresholds with the
distribution of every published image's nearest-source distance (invariant 3: "by the
metrics and thresholds in the release's data card"), the calibration of those
thresholds, privacy and utility figures, and the Great Expectations summary.

Two rules shape the model:

* Nothing identifying can be put on it: it has no field for a source, subject or record
  id, nor for a filesystem path (the expectations link must be relative to the release).
  Labels, reasons and metric names are short keys, and metric names become file names.
* A figure that was not computed is ``None`` and prints as "not computed"; nothing is
  filled in or estimated here.

The HTML is self-contained (plots and the sample grid embedded as data URIs), so it can
be mailed or archived alone; the Markdown links the same PNGs, written under ``card/``.
PNGs are encoded by Pillow from the rendered pixels, so they carry no text chunks
(matplotlib would add a "Software" tag); the release's metadata check stays simple.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from consentgen.errors import ConfigError
from validation.release.expectations import ExpectationReport, FailedExpectation

NOT_COMPUTED = "not computed"
CARD_FOLDER = "card"
"""Subfolder (beside ``data_card.md``) that holds the PNGs the Markdown links."""

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
    """From sources to published images. Unknown counts stay None."""

    sources_total: int | None = Field(None, ge=0)
    eligible_subjects: int | None = Field(None, ge=0)
    eligible_records: int | None = Field(None, ge=0)
    excluded_by_reason: dict[str, int] | None = None
    """Records left out and why, e.g. ``not_consented``, ``revoked``, ``expired``."""
    shards: int | None = Field(None, ge=1)
    """K, the number of SISA shards."""
    records_per_shard: list[int] | None = None
    """Training records of shard 0..K-1."""
    candidates_generated: int | None = Field(None, ge=0)
    flagged: int | None = Field(None, ge=0)
    replaced: int | None = Field(None, ge=0)
    published_per_label: dict[str, int] | None = None

    @field_validator("excluded_by_reason", "published_per_label")
    @classmethod
    def _keys(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is not None:
            for key, count in value.items():
                if not re.match(_KEY, key):
                    raise ValueError(f"key {key!r} must be a short name ({_KEY})")
                if count < 0:
                    raise ValueError(f"count for {key!r} is negative")
        return value

    @model_validator(mode="after")
    def _shards(self) -> Counts:
        if self.records_per_shard is not None:
            if any(n < 0 for n in self.records_per_shard):
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
        return f"{'>' if self.direction == 'min' else '<'} {_g(self.value)}"

    def flag_rule(self) -> str:
        """E.g. '<= 4': when the audit calls a candidate a near-duplicate."""
        return f"{'<=' if self.direction == 'min' else '>='} {_g(self.value)}"


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
    n_negatives: int | None = Field(None, ge=0)

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
    n_train: int | None = Field(None, ge=0)
    n_holdout: int | None = Field(None, ge=0)
    membership_auc: Fraction | None = Field(None, ge=0, le=1)
    """ROC AUC of a loss-based membership-inference attack; 0.5 = no signal."""


class UtilityFigures(_Model):
    """Train-synthetic-test-real next to train-real-test-real."""

    tstr_accuracy: Fraction | None = Field(None, ge=0, le=1)
    trtr_accuracy: Fraction | None = Field(None, ge=0, le=1)
    n_test: int | None = Field(None, ge=0)
    classifier: str | None = None


class ExpectationsSummary(_Model):
    """A Great Expectations suite's outcome, with a release-relative docs link."""

    suite_name: str
    success: bool
    evaluated: int = Field(ge=0)
    successful: int = Field(ge=0)
    failed: list[FailedExpectation] = []
    docs_link: str | None = None
    """``expectations/release_manifest/index.html``: relative to the release folder."""

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
            successful=report.successful, failed=list(report.failed), docs_link=link,
        )


class DataCard(_Model):
    """Everything the data card prints; see the module docstring for the rules."""

    version: str = Field(pattern=r"^v\d{4,}$")
    created_at: AwareDatetime
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

    @model_validator(mode="after")
    def _metrics(self) -> DataCard:
        for metric in [*self.thresholds, *self.distances]:
            if not _METRIC.match(metric):
                raise ValueError(f"metric name {metric!r} must match {_METRIC.pattern}")
        missing = sorted(set(self.distances) - set(self.thresholds))
        if missing:
            raise ValueError(f"distances without a threshold: {missing}")
        return self


# --- formatting --------------------------------------------------------------------------


def _g(value: float) -> str:
    return f"{value:.4g}"


def _int(value: int | None) -> str:
    return NOT_COMPUTED if value is None else f"{value:,}"


def _num(value: float | None) -> str:
    return NOT_COMPUTED if value is None else _g(value)


def _pct(value: float | None) -> str:
    """A share as a percentage with one decimal, e.g. 0.512 -> '51.2 %'."""
    return NOT_COMPUTED if value is None else f"{100 * value:.1f} %"


def _time(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _sections(card: DataCard) -> list[tuple[str, list[tuple[str, str]]]]:
    """The card's key/value tables, in print order, shared by Markdown and HTML."""
    c = card.counts
    g = card.generator
    excluded = (NOT_COMPUTED if c.excluded_by_reason is None else
                ", ".join(f"{k}: {v:,}" for k, v in sorted(c.excluded_by_reason.items()))
                or "none")
    per_shard = (NOT_COMPUTED if c.records_per_shard is None else
                 ", ".join(f"{i}: {n:,}" for i, n in enumerate(c.records_per_shard)))
    per_label = (NOT_COMPUTED if c.published_per_label is None else
                 ", ".join(f"{k}: {v:,}" for k, v in sorted(c.published_per_label.items())))
    if g.dp_epsilon is None:
        dp = "none (trained without differential privacy)"
    else:
        dp = f"ε = {_g(g.dp_epsilon)}" + (f", δ = {g.dp_delta:.1e}" if g.dp_delta else "")
    size = NOT_COMPUTED if g.image_size is None else f"{g.image_size[0]}×{g.image_size[1]}"
    p = card.privacy
    u = card.utility
    sections = [
        ("Consent snapshot", [
            ("Purpose", card.purpose),
            ("Ledger head sequence", str(card.consent.seq)),
            ("Ledger head hash", card.consent.hash),
            ("Snapshot time", _time(card.consent.snapshot_time)),
        ]),
        ("Counts", [
            ("Source records (all)", _int(c.sources_total)),
            ("Eligible subjects", _int(c.eligible_subjects)),
            ("Eligible records", _int(c.eligible_records)),
            ("Excluded records by reason", excluded),
            ("Shards (K)", _int(c.shards)),
            ("Training records per shard", per_shard),
            ("Candidates generated", _int(c.candidates_generated)),
            ("Flagged as near-duplicates", _int(c.flagged)),
            ("Replaced", _int(c.replaced)),
            ("Published images", _int(c.published_total)),
            ("Published images per label", per_label),
        ]),
        ("Generator", [
            ("Kind", g.kind),
            ("Preset", g.preset or NOT_COMPUTED),
            ("Image size", size),
            ("Epochs", _int(g.epochs)),
            ("Sampling steps", _int(g.sampling_steps)),
            ("Differential privacy", dp),
            ("Model versions", ", ".join(g.model_versions) or NOT_COMPUTED),
        ]),
        ("Privacy", [
            ("DCR: share of synthetic images closer to train than to holdout",
             _pct(p.dcr_closer_to_train_share)),
            ("DCR ratio (median synthetic→train / median holdout→train)", _num(p.dcr_ratio)),
            ("Synthetic images compared", _int(p.n_synthetic)),
            ("Training records compared", _int(p.n_train)),
            ("Held-out records compared", _int(p.n_holdout)),
            ("Membership-inference AUC", _num(p.membership_auc)),
        ]),
        ("Utility", [
            ("Classifier", u.classifier or NOT_COMPUTED),
            ("TSTR accuracy (train synthetic, test real)", _pct(u.tstr_accuracy)),
            ("TRTR accuracy (train real, test real)", _pct(u.trtr_accuracy)),
            ("Real test images", _int(u.n_test)),
        ]),
    ]
    return sections


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
        return (f"n={int(counts.sum()):,} (binned), between {_g(edges[nz[0]])} "
                f"and {_g(edges[nz[-1] + 1])}")
    if stats["n"] == 0:
        return "n=0"
    text = (f"n={stats['n']:,}, min {_g(stats['min'])}, median {_g(stats['median'])}, "
            f"max {_g(stats['max'])}")
    crossing = _crossing(dist, t)
    if crossing:
        text += f"; WARNING: {crossing} value(s) on the flagged side"
    return text


def _threshold_rows(card: DataCard) -> list[list[str]]:
    rows = []
    for metric, t in sorted(card.thresholds.items()):
        rows.append([metric, _g(t.value), f"flagged when {t.flag_rule()}",
                     f"must be {t.shipped_rule()}",
                     _distance_summary(card.distances.get(metric), t)])
    return rows


def _calibration_rows(card: DataCard) -> list[tuple[str, str]]:
    cal = card.calibration
    if cal is None:
        return [("Calibration", NOT_COMPUTED)]
    rows = [(f"Detection rate: {name}", _pct(rate))
            for name, rate in sorted(cal.detection_rate.items())]
    if not rows:
        rows.append(("Detection rate per transform", NOT_COMPUTED))
    rows += [
        ("False-positive rate (different images flagged)", _pct(cal.false_positive_rate)),
        ("Known copies (positives)", _int(cal.n_positives)),
        ("Different images (negatives)", _int(cal.n_negatives)),
    ]
    return rows


# --- images --------------------------------------------------------------------------------


def _png_bytes(rgb: np.ndarray) -> bytes:
    """PNG of an RGB uint8 array, with no text chunks."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


def _histogram_png(metric: str, dist: DistanceDistribution, threshold: AuditThreshold) -> bytes:
    """The distribution with the threshold drawn and the flagged side shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.4), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    lo_hi: list[float] = [threshold.value]
    if dist.values is not None:
        arr = np.asarray(dist.values, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size:
            integral = metric.startswith("phash") or bool(np.all(arr == np.round(arr)))
            if integral and arr.max() - arr.min() <= 128:
                bins: int | np.ndarray = np.arange(arr.min() - 0.5, arr.max() + 1.5, 1.0)
            else:
                bins = min(50, max(10, int(np.sqrt(arr.size))))
            ax.hist(arr, bins=bins, color="#4c72b0", edgecolor="white", linewidth=0.5)
            lo_hi += [float(arr.min()), float(arr.max())]
        label_n = f"n = {arr.size:,}"
    else:
        edges = np.asarray(dist.bin_edges, dtype=np.float64)
        counts = np.asarray(dist.counts, dtype=np.float64)
        ax.stairs(counts, edges, fill=True, color="#4c72b0")
        nz = np.flatnonzero(counts)
        if nz.size:
            lo_hi += [float(edges[nz[0]]), float(edges[nz[-1] + 1])]
        label_n = f"n = {int(counts.sum()):,}"
    lo, hi = min(lo_hi), max(lo_hi)
    pad = (hi - lo) * 0.08 or 1.0
    ax.set_xlim(lo - pad, hi + pad)
    ax.axvline(threshold.value, color="#c44e52", linestyle="--", linewidth=1.5,
               label=f"threshold {_g(threshold.value)} (flagged {threshold.flag_rule()})")
    if threshold.direction == "min":
        ax.axvspan(lo - pad, threshold.value, color="#c44e52", alpha=0.08)
    else:
        ax.axvspan(threshold.value, hi + pad, color="#c44e52", alpha=0.08)
    ax.set_title(f"{metric}: nearest source per published image ({label_n})", fontsize=10)
    ax.set_xlabel(metric)
    ax.set_ylabel("published images")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return _png_bytes(rgba[..., :3])


def _as_rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ConfigError(f"sample images must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        return arr[..., :3]
    raise ConfigError(f"sample images must be HxW or HxWxC (C in 1, 3, 4), got {arr.shape}")


def _sample_grid_png(images: Sequence[np.ndarray], labels: Sequence[object]) -> bytes:
    """A grid of the published samples, each captioned with its label."""
    rgb = [_as_rgb(im) for im in images]
    side = max(max(im.shape[0], im.shape[1]) for im in rgb)
    tile = side * max(1, math.ceil(96 / side))  # nearest upscale: small images stay crisp
    caption, gap = 16, 4
    cols = min(8, len(rgb))
    rows = math.ceil(len(rgb) / cols)
    grid = Image.new("RGB", (cols * (tile + gap) + gap, rows * (tile + caption + gap) + gap),
                     "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for i, (im, label) in enumerate(zip(rgb, labels, strict=True)):
        r, c = divmod(i, cols)
        x, y = gap + c * (tile + gap), gap + r * (tile + caption + gap)
        pil = Image.fromarray(np.ascontiguousarray(im))
        pil = pil.resize((tile, tile), Image.Resampling.NEAREST)
        grid.paste(pil, (x, y))
        draw.text((x + 2, y + tile + 2), f"label {label}"[:24], fill="black", font=font)
    return _png_bytes(np.asarray(grid))


# --- writers ---------------------------------------------------------------------------------


_AUDIT_PROMISE = (
    "No published image is a near-duplicate of any source under these metrics and "
    "thresholds (each compares the image with its nearest source)."
)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(card: DataCard, hist_files: dict[str, str], samples_file: str | None) -> str:
    out = [f"# Data card — release {card.version}", ""]
    out.append(f"Created {_time(card.created_at)}.")
    out.append("")
    for notice in card.notices:
        out.append(f"> **Notice:** {_md_cell(notice)}")
        out.append("")
    for title, rows in _sections(card):
        out += [f"## {title}", "", "| | |", "|---|---|"]
        out += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in rows]
        out.append("")
    out += ["## Near-duplicate audit", "", _AUDIT_PROMISE, "",
            "| Metric | Threshold | Audit rule | Published images | Nearest-source distances |",
            "|---|---|---|---|---|"]
    out += ["| " + " | ".join(_md_cell(x) for x in row) + " |" for row in _threshold_rows(card)]
    out.append("")
    for metric, rel in hist_files.items():
        out += [f"![{metric} distribution]({rel})", ""]
    out += ["## Threshold calibration", "", "| | |", "|---|---|"]
    out += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in _calibration_rows(card)]
    out.append("")
    out += ["## Great Expectations", ""]
    if not card.expectations:
        out += [NOT_COMPUTED, ""]
    for s in card.expectations:
        status = "passed" if s.success else "FAILED"
        link = f" — [Data Docs]({s.docs_link})" if s.docs_link else ""
        out.append(f"- `{s.suite_name}`: {status}, {s.successful}/{s.evaluated} "
                   f"expectations met{link}")
        for f in s.failed:
            col = f" on `{f.column}`" if f.column else ""
            out.append(f"  - `{f.type}`{col}: {_md_cell(f.reason)}")
    out.append("")
    out += ["## Sample of published images", ""]
    out += [f"![sample grid]({samples_file})" if samples_file else "no samples given", ""]
    return "\n".join(out)


def _html(card: DataCard, hist_png: dict[str, bytes], samples_png: bytes | None) -> str:
    e = html.escape

    def uri(data: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")

    def table(rows: Sequence[Sequence[str]], head: Sequence[str] | None = None) -> str:
        parts = ["<table>"]
        if head:
            parts.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
        for row in rows:
            cells = "".join(
                f"<td class=\"nc\">{e(v)}</td>" if v == NOT_COMPUTED else f"<td>{e(v)}</td>"
                for v in row
            )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
        return "\n".join(parts)

    body = [f"<h1>Data card — release {e(card.version)}</h1>",
            f"<p>Created {e(_time(card.created_at))}.</p>"]
    body += [f"<p class=\"notice\"><strong>Notice:</strong> {e(n)}</p>" for n in card.notices]
    for title, rows in _sections(card):
        body += [f"<h2>{e(title)}</h2>", table(rows)]
    body += ["<h2>Near-duplicate audit</h2>",
             f"<p>{e(_AUDIT_PROMISE)}</p>",
             table(_threshold_rows(card), ["Metric", "Threshold", "Audit rule",
                                           "Published images", "Nearest-source distances"])]
    for metric, data in hist_png.items():
        body.append(f"<figure><img alt=\"{e(metric)} distribution\" src=\"{uri(data)}\">"
                    f"<figcaption>{e(metric)}</figcaption></figure>")
    body += ["<h2>Threshold calibration</h2>", table(_calibration_rows(card))]
    body.append("<h2>Great Expectations</h2>")
    if not card.expectations:
        body.append(f"<p class=\"nc\">{NOT_COMPUTED}</p>")
    else:
        items = []
        for s in card.expectations:
            status = "passed" if s.success else "FAILED"
            link = (f" — <a href=\"{e(s.docs_link)}\">Data Docs</a>" if s.docs_link else "")
            fails = "".join(
                f"<li><code>{e(f.type)}</code>"
                f"{' on <code>' + e(f.column) + '</code>' if f.column else ''}: {e(f.reason)}</li>"
                for f in s.failed
            )
            items.append(f"<li><code>{e(s.suite_name)}</code>: {status}, {s.successful}/"
                         f"{s.evaluated} expectations met{link}"
                         f"{'<ul>' + fails + '</ul>' if fails else ''}</li>")
        body.append("<ul>" + "".join(items) + "</ul>")
    body.append("<h2>Sample of published images</h2>")
    if samples_png is not None:
        body.append(f"<img alt=\"sample grid\" src=\"{uri(samples_png)}\">")
    else:
        body.append("<p>no samples given</p>")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem;color:#222}table{border-collapse:collapse;margin:.5rem 0 1rem}"
        "td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}"
        "td.nc,p.nc{color:#888;font-style:italic}"
        ".notice{background:#fff3cd;border:1px solid #e0c36a;padding:.6rem}"
        "img{max-width:100%}code{font-size:.9em}"
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Data card {e(card.version)}</title><style>{style}</style></head>\n<body>\n"
        + "\n".join(body) + "\n</body></html>\n"
    )


def render_data_card(
    card: DataCard,
    out_dir: Path,
    *,
    sample_images: Sequence[np.ndarray],
    sample_labels: Sequence[object],
) -> tuple[Path, Path]:
    """Write ``data_card.md`` and ``data_card.html`` (and ``card/*.png``) into `out_dir`.

    One histogram PNG per metric in ``card.distances`` (``card/hist_<metric>.png``) with
    the threshold drawn, and ``card/samples.png``, a captioned grid of `sample_images`
    (uint8, HxW or HxWxC, of published images only). The HTML embeds the same PNGs and
    stands alone. Returns (markdown path, html path).
    """
    if len(sample_images) != len(sample_labels):
        raise ConfigError(
            f"{len(sample_images)} sample images but {len(sample_labels)} sample labels"
        )
    out_dir = Path(out_dir)
    card_dir = out_dir / CARD_FOLDER
    card_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*card_dir.glob("hist_*.png"), card_dir / "samples.png"]:
        stale.unlink(missing_ok=True)  # a re-render must not keep another metric's plot

    hist_png: dict[str, bytes] = {}
    hist_files: dict[str, str] = {}
    for metric in sorted(card.distances):
        data = _histogram_png(metric, card.distances[metric], card.thresholds[metric])
        name = f"hist_{metric}.png"
        (card_dir / name).write_bytes(data)
        hist_png[metric] = data
        hist_files[metric] = f"{CARD_FOLDER}/{name}"
    samples_png = None
    samples_file = None
    if len(sample_images):
        samples_png = _sample_grid_png(sample_images, sample_labels)
        (card_dir / "samples.png").write_bytes(samples_png)
        samples_file = f"{CARD_FOLDER}/samples.png"

    md_path = out_dir / "data_card.md"
    html_path = out_dir / "data_card.html"
    md_path.write_text(_markdown(card, hist_files, samples_file), encoding="utf-8")
    html_path.write_text(_html(card, hist_png, samples_png), encoding="utf-8")
    return md_path, html_path
