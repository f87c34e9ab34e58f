"""How well the configured thresholds catch copies and spare different images.

Known positives are reference sources put through small transforms (crop, mirror,
noise, brightness, JPEG re-encoding); known negatives are other sources, held out of
the reference set. Both are audited against the reference set with the configured
thresholds, and the report gives the detection rate per transform (overall and per
metric) and the false-positive rate. The data card carries these rates.

Negatives must really be different images: pass `groups` (subject ids, or
`duplicate_groups` of the sources) so that no negative has a twin in the reference set.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from consentgen.errors import AuditError

from .arrays import check_ids, check_images
from .audit import AuditIndex
from .config import AuditConfig
from .results import METRICS, AuditResult, MetricHistogram

TRANSFORMS: tuple[str, ...] = ("crop", "flip", "noise", "brightness", "jpeg")


class TransformParams(BaseModel):
    """Strength of each known-positive transform: small, as a memorised copy would be."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    crop_fraction: float = Field(0.9, gt=0.5, le=1.0)
    """Side kept by a random crop, then resized back (0.9 = 10 % off, ~19 % of area)."""
    noise_sigma: float = Field(8.0, ge=0.0)
    """Gaussian noise, in grey levels."""
    brightness_factor: float = Field(1.2, gt=0.0)
    """Pixel values multiplied, then clipped."""
    jpeg_quality: int = Field(75, ge=1, le=95)


def _crop(img: np.ndarray, rng: np.random.Generator, p: TransformParams) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = max(1, round(h * p.crop_fraction)), max(1, round(w * p.crop_fraction))
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    pil = Image.fromarray(img[y : y + ch, x : x + cw])
    return np.asarray(pil.resize((w, h), Image.Resampling.BILINEAR))


def _flip(img: np.ndarray, rng: np.random.Generator, p: TransformParams) -> np.ndarray:
    return np.ascontiguousarray(img[:, ::-1])


def _noise(img: np.ndarray, rng: np.random.Generator, p: TransformParams) -> np.ndarray:
    noisy = img.astype(np.float64) + rng.normal(0.0, p.noise_sigma, img.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _brightness(img: np.ndarray, rng: np.random.Generator, p: TransformParams) -> np.ndarray:
    return np.clip(np.rint(img.astype(np.float64) * p.brightness_factor), 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, rng: np.random.Generator, p: TransformParams) -> np.ndarray:
    if img.ndim == 3 and img.shape[-1] == 4:  # JPEG has no alpha: re-encode colour only
        return np.concatenate([_jpeg(img[..., :3], rng, p), img[..., 3:]], axis=-1)
    pil = Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=p.jpeg_quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert(pil.mode))


_APPLY: dict[str, Callable[[np.ndarray, np.random.Generator, TransformParams], np.ndarray]] = {
    "crop": _crop, "flip": _flip, "noise": _noise, "brightness": _brightness, "jpeg": _jpeg,
}


def transform_images(
    images: np.ndarray, transform: str, seed: int = 0, params: TransformParams | None = None
) -> np.ndarray:
    """A lightly transformed copy of every image (uint8, same shape): a known positive."""
    if transform not in _APPLY:
        raise AuditError(f"unknown transform {transform!r}; known: {', '.join(TRANSFORMS)}")
    params = params or TransformParams()
    rng = np.random.default_rng(seed)
    fn = _APPLY[transform]
    imgs = images[..., 0] if images.ndim == 4 and images.shape[-1] == 1 else images
    out = np.stack([fn(img, rng, params) for img in imgs]) if len(imgs) else imgs.copy()
    return out.reshape(images.shape).astype(np.uint8)


class TransformDetection(BaseModel):
    """Detection of one transform's copies: any metric, and each metric alone."""

    model_config = ConfigDict(frozen=True)

    transform: str
    n: int
    detected: float
    by_metric: dict[str, float]


class CalibrationReport(BaseModel):
    """Detection rates per transform and the false-positive rate, at given thresholds."""

    model_config = ConfigDict(frozen=True)

    thresholds: dict[str, float]
    embedding: str
    transforms: TransformParams
    n_sources: int
    n_reference: int
    n_negatives: int
    negatives_grouped: bool
    """True when negatives were held out by group, so none has a twin in the reference."""
    detection: dict[str, TransformDetection]
    detection_overall: float
    false_positive_rate: float
    false_positive_by_metric: dict[str, float]
    flagged_negative_ids: list[str]
    """Negatives that were flagged, for a look: often real duplicates the groups missed."""
    histograms: dict[str, dict[str, MetricHistogram]]
    """"positives" and "negatives" -> metric -> histogram of nearest values."""
    seed: int


def _rates(result: AuditResult) -> tuple[float, dict[str, float]]:
    by = result.table.column("flagged_by").to_pylist()
    n = max(len(by), 1)
    return (
        float(np.mean(result.flagged)) if len(by) else 0.0,
        {m: sum(m in b.split(",") for b in by) / n for m in METRICS},
    )


def _split(groups: np.ndarray, n_negatives: int, rng: np.random.Generator) -> np.ndarray:
    """bool [N]: True for negatives, whole groups at a time, at most half the images."""
    labels = rng.permutation(np.unique(groups))
    negative = np.zeros(len(groups), dtype=bool)
    cap = len(groups) // 2
    for label in labels:
        members = groups == label
        if negative.sum() >= n_negatives:
            break
        if negative.sum() + members.sum() > cap:
            continue
        negative |= members
    return negative


def calibrate(
    sources: np.ndarray, config: AuditConfig | None = None, seed: int = 0, *,
    groups: Sequence[object] | np.ndarray | None = None, source_ids: Sequence[object] | None = None,
    n_positives: int = 100, n_negatives: int = 200, params: TransformParams | None = None,
) -> CalibrationReport:
    """Detection rate per transform and false-positive rate of `config` on these sources."""
    config = config or AuditConfig()
    params = params or TransformParams()
    check_images(sources, "sources")
    ids = check_ids(source_ids, len(sources), "source_ids")
    if len(sources) < 4:
        raise AuditError("calibration needs at least 4 sources")
    if groups is None:
        labels = np.arange(len(sources))
    else:
        labels = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)[1]
        if len(labels) != len(sources):
            raise AuditError(f"groups: {len(labels)} labels for {len(sources)} sources")
    rng = np.random.default_rng(seed)
    negative = _split(labels, n_negatives, rng)
    if not negative.any() or negative.all():
        raise AuditError("calibration could not split sources into reference and negatives")
    ref_rows = np.flatnonzero(~negative)
    index = AuditIndex.build(sources[ref_rows], [ids[i] for i in ref_rows], config)

    originals = sources[rng.choice(ref_rows, size=min(n_positives, len(ref_rows)), replace=False)]
    positives = [
        transform_images(originals, t, seed=seed + k, params=params)
        for k, t in enumerate(TRANSFORMS)
    ]
    pos_result = index.audit(np.concatenate(positives))
    neg_rows = np.flatnonzero(negative)
    neg_result = index.audit(sources[neg_rows], [ids[i] for i in neg_rows])

    detection = {}
    n_orig = len(originals)
    for k, t in enumerate(TRANSFORMS):
        part = AuditResult(pos_result.table.slice(k * n_orig, n_orig), pos_result.summary)
        rate, by_metric = _rates(part)
        detection[t] = TransformDetection(transform=t, n=n_orig, detected=rate, by_metric=by_metric)
    fp_rate, fp_by = _rates(neg_result)
    flagged_ids = [
        i for i, f in zip(neg_result.table.column("candidate_id").to_pylist(),
                          neg_result.flagged, strict=True) if f
    ]
    return CalibrationReport(
        thresholds=config.thresholds(),
        embedding=index.embedding_name,
        transforms=params,
        n_sources=len(sources),
        n_reference=len(ref_rows),
        n_negatives=len(neg_rows),
        negatives_grouped=groups is not None,
        detection=detection,
        detection_overall=float(np.mean(pos_result.flagged)),
        false_positive_rate=fp_rate,
        false_positive_by_metric=fp_by,
        flagged_negative_ids=flagged_ids,
        histograms={
            "positives": pos_result.summary.histograms,
            "negatives": neg_result.summary.histograms,
        },
        seed=seed,
    )
