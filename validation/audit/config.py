"""The audit's settings: one threshold per metric, the search strategy, the embedding.

The defaults were calibrated on the Br35H brain-MRI slices at 64x64 (3,000 files that
fall into ~510 groups of the same slice, see `duplicate_groups`): 300 sources put
through each light transform, and ~600 sources of held-out groups as negatives. Each
threshold sits above the light copies its metric can see and below the nearest
*different* slice, so that a flag means "copy" and not "also a brain". With all four,
copies were detected at 100 % (mirror, noise, brightness x1.2, JPEG q75) and 81-82 %
(10 % crop), and 1.5-2.3 % of held-out slices were flagged, mostly by pHash on
neighbouring slices of the same patient. Every value goes into the data card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SearchMode = Literal["exact", "index", "auto"]

DEFAULT_EMBEDDING_COSINE_MIN = 0.95
"""Threshold of the built-in DCT-PCA embedding (flip-matched cosine, region descriptors).

On Br35H (64x64) the nearest *different* slice reached 0.949 at the 99th percentile
(0.972 at most, a zoomed copy the grouping missed), while mirrored, noisy and
re-encoded copies stayed above 0.97 and brightened ones above 0.957 at their 1st.
"""


class AuditConfig(BaseModel):
    """Thresholds and search settings of the near-duplicate audit.

    A candidate is flagged when ANY metric crosses its threshold: distances flag at or
    below their maximum, the cosine at or above its minimum.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    phash_max_distance: int = Field(4, ge=0, le=64)
    """pHash (64-bit, imagehash) Hamming distance at or below which a pair is a copy.

    Light copies stayed within 2 (JPEG) to 6 bits (noise, brightness; 99th percentile)
    on Br35H, but in this homogeneous domain different slices share their low-frequency
    outline: 1 % of held-out slices had another within 6 bits, some within 4 (looked
    at: neighbouring slices or other sequences of the same patient). So 4, not the
    usual 8-10; mirrored and cropped copies are beyond pHash at any sane threshold.
    """

    pixel_l2_max: float = Field(0.30, ge=0.0)
    """RMS difference of the two images after each is standardised (zero mean, unit
    variance), so gain and offset changes do not hide a copy. 0 = same pixels,
    about 1.4 = uncorrelated. On Br35H, JPEG and brightness copies stayed under 0.19,
    noise (sigma 8) copies under 0.25 (99th percentile); held-out slices began at 0.42."""

    patch_l2_max: float = Field(0.40, ge=0.0)
    """Tile-wise maximum of the same RMS over a `patch_grid` x `patch_grid` grid
    (Carlini et al. 2023): a pair counts only if EVERY tile is close, so a shared black
    background cannot make two images look alike. Always >= pixel_l2. On Br35H light
    copies stayed under 0.36, held-out slices began at 0.54."""

    patch_grid: int = Field(4, ge=1, le=32)
    """Tiles per side for the patch-wise metric (4 -> sixteen 16x16 tiles at 64x64)."""

    embedding_cosine_min: float | None = Field(None, ge=-1.0, le=1.0)
    """Cosine at or above which a pair is a copy. None = the built-in embedding's
    calibrated default; a custom `embedding_model_path` must set its own."""

    embedding_model_path: Path | None = None
    """Local TorchScript file (e.g. an SSCD copy-detection model). Never downloaded."""

    embedding_input_size: int | None = Field(None, ge=8, le=1024)
    """Side the TorchScript model expects (images are resized); None = keep the size."""

    embedding_flip_invariant: bool = True
    """Also match each candidate's horizontal mirror: a mirrored copy is still a copy."""

    embedding_crop_scales: tuple[float, ...] = (0.95, 0.9, 0.85, 0.8)
    """Each source is also embedded as crops of these side fractions (resized back), on
    an `embedding_crop_grid` x `embedding_crop_grid` grid of offsets: region
    descriptors, so that a candidate that is a zoomed-in part of a source meets a
    descriptor of that part. () turns them off (e.g. for an SSCD model)."""

    embedding_crop_grid: int = Field(3, ge=1, le=8)

    search: SearchMode = "auto"
    """exact: blocked matmul over every pair. index: faiss IVF shortlist, re-ranked
    exactly, with recall checked against exact on a sample. auto: index from
    `auto_index_min_sources` sources on, exact below (and when recall falls short)."""

    block_size: int = Field(1024, ge=16, le=65536)
    """Rows per block on each side of the exact search: memory is ~3 * block_size**2
    floats however many images there are."""

    auto_index_min_sources: int = Field(50_000, ge=1)
    ivf_nlist: int | None = Field(None, ge=1)
    """IVF cells; None = round(sqrt(n_sources)), cheap to train and plenty for copies."""
    ivf_nprobe: int = Field(16, ge=1)
    ivf_shortlist: int = Field(32, ge=1)
    """Neighbours the index proposes per candidate before exact re-ranking."""

    recall_sample: int = Field(256, ge=1)
    """Candidates searched exactly as well, to measure the index's recall."""
    min_index_recall: float = Field(0.95, ge=0.0, le=1.0)
    """Nearest-neighbour recall the index must reach on sampled candidates near a
    threshold (see SearchReport.near_recall), and every exact flag in the sample must
    be found; else auto falls back to exact search and index raises AuditError."""

    seed: int = 0

    @model_validator(mode="after")
    def _custom_model_needs_threshold(self) -> AuditConfig:
        if any(not 0.5 <= c < 1.0 for c in self.embedding_crop_scales):
            raise ValueError("embedding_crop_scales must lie in [0.5, 1)")
        if self.embedding_model_path is not None and self.embedding_cosine_min is None:
            raise ValueError(
                "embedding_cosine_min must be set when embedding_model_path is given: "
                "a model's cosine scale is its own (calibrate it with `calibrate`)"
            )
        return self

    @property
    def embedding_threshold(self) -> float:
        """The cosine threshold in force (the built-in default when none is set)."""
        if self.embedding_cosine_min is not None:
            return self.embedding_cosine_min
        return DEFAULT_EMBEDDING_COSINE_MIN

    def thresholds(self) -> dict[str, float]:
        """Metric name -> threshold, as the table and the data card name them."""
        return {
            "phash_distance": float(self.phash_max_distance),
            "pixel_l2": self.pixel_l2_max,
            "patch_l2": self.patch_l2_max,
            "embedding_cosine": self.embedding_threshold,
        }
