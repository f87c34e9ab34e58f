"""The public manifest of a release: one row per image, nothing that names a source.

Columns are fixed (`MANIFEST_COLUMNS`); the expectations suite checks the exact set, so
a column carrying a record, subject or source can never slip in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pandas as pd

from pipelines.catalog import AuditRow, Candidate
from pipelines.settings import BuildConfig

MANIFEST_COLUMNS = [
    "image_id", "file_name", "label", "label_name", "width", "height", "generator",
    "model_version", "phash_distance", "pixel_l2", "patch_l2", "embedding_cosine",
]
AUDIT_PUBLIC_COLUMNS = ["image_id", "phash_distance", "pixel_l2", "patch_l2", "embedding_cosine",
                        "flagged"]


@dataclass(frozen=True)
class StagedImage:
    image_id: str
    candidate: Candidate
    audit: AuditRow

    def file_name(self, config: BuildConfig) -> str:
        return f"images/{config.labels.name_of(self.candidate.label)}/{self.image_id}.png"


def stage(candidates: list[Candidate], audit: dict[str, AuditRow]) -> list[StagedImage]:
    """Give each image a fresh random id: the public id never reveals the candidate."""
    return [StagedImage(uuid.uuid4().hex, c, audit[c.candidate_id]) for c in candidates]


def manifest_frame(staged: list[StagedImage], config: BuildConfig) -> pd.DataFrame:
    size = config.generator.image_size
    rows = [
        {
            "image_id": s.image_id,
            "file_name": s.file_name(config),
            "label": s.candidate.label,
            "label_name": config.labels.name_of(s.candidate.label),
            "width": size,
            "height": size,
            "generator": config.generator.kind,  # ddpm or img2img
            "model_version": s.candidate.model_version,
            "phash_distance": s.audit.phash_distance,
            "pixel_l2": s.audit.pixel_l2,
            "patch_l2": s.audit.patch_l2,
            "embedding_cosine": s.audit.embedding_cosine,
        }
        for s in staged
    ]
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def public_audit_frame(staged: list[StagedImage]) -> pd.DataFrame:
    """The audit table as it may ship: no nearest-source ids."""
    return pd.DataFrame(
        [{"image_id": s.image_id, "phash_distance": s.audit.phash_distance,
          "pixel_l2": s.audit.pixel_l2, "patch_l2": s.audit.patch_l2,
          "embedding_cosine": s.audit.embedding_cosine, "flagged": s.audit.flagged}
         for s in staged],
        columns=AUDIT_PUBLIC_COLUMNS,
    )
