"""One file's fate at ingest: accepted as a record, a duplicate, or quarantined with a reason.

`ingest` (the walk, the manifest, the run row) hands each file to `FileIntake.process`,
which never raises for a bad file: decoding is `validation`'s job, identity (subject,
record id, conflicts, shared content) is decided here, and rows are recorded in batches.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, PositiveInt

from consentgen.errors import CatalogError, DecodeError
from consentgen.labels import canonical_label
from pipelines.catalog import SOURCES_DIR, Catalog, IngestRun, QuarantineEntry, SourceRecord
from validation.sources.decode import DecodeConfig, decode_bytes, read_limited, short_error
from validation.sources.manifest import ManifestRow
from validation.sources.normalize import NormalizeConfig, content_hash, encode_png, normalize
from validation.sources.provenance import BURNED_IN_TAG, ProvenanceConfig, read_provenance

# Reasons decided here rather than by the decoder (see validation.sources.decode.Reason for those).
NOT_IN_MANIFEST = "not_in_manifest"
NO_SUBJECT_TAG = "no_subject_tag"
RECORD_CONFLICT = "record_conflict"
INVALID_LABEL = "invalid_label"
INTERNAL_ERROR = "internal_error"


class IngestConfig(DecodeConfig, NormalizeConfig, ProvenanceConfig):
    """Decoding limits, the normalised shape, what a file's own declarations do, and how
    often the catalog is written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: PositiveInt = 500
    read_provenance: bool = True
    """For bench/ingest.py alone, which measures what reading provenance costs: False
    skips the C2PA / XMP / BurnedInAnnotation checks (opt-outs would be trained on). No
    command sets it; the run row's config_json records it."""


class IngestSummary(BaseModel):
    """What one ingest did; `quarantined_by_reason` sums to `quarantined`."""

    run_id: str
    root: str
    files_seen: int = 0
    accepted: int = 0
    duplicate: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = {}
    shared_content: int = 0
    """Accepted records whose pixels another subject's record already has."""
    simulated: int = 0
    """Accepted records marked simulated (demo subjects)."""
    seconds: float = 0.0


@dataclass
class Known:
    """What the catalog (and this run so far) holds, for dedupe without a query per file."""

    records: dict[str, tuple[str, str, str | None, str]]
    by_file: dict[tuple[str, str], str] = field(default_factory=dict)
    subjects_by_content: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rid, (subject, chash, _label, fsha) in self.records.items():
            self.by_file[(fsha, subject)] = rid
            self.subjects_by_content.setdefault(chash, set()).add(subject)

    def add(self, record: SourceRecord) -> None:
        self.records[record.record_id] = (
            record.subject_id,
            record.content_hash,
            record.label,
            record.file_sha256,
        )
        self.by_file[(record.file_sha256, record.subject_id)] = record.record_id
        self.subjects_by_content.setdefault(record.content_hash, set()).add(record.subject_id)


Outcome = Literal["accepted", "duplicate", "quarantined"]


@dataclass
class FileIntake:
    catalog: Catalog
    config: IngestConfig
    entries: dict[str, ManifestRow] | None
    tag: str | None
    known: Known
    summary: IngestSummary
    label_tag: str | None = None
    pending_sources: list[SourceRecord] = field(default_factory=list)
    pending_quarantine: list[QuarantineEntry] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    folders: set[str] = field(default_factory=set)

    def process(self, file: Path) -> None:
        """Accept, skip or quarantine one file; never raises for a bad file."""
        self.summary.files_seen += 1
        try:
            outcome = self._one(file)
        except _Quarantine as q:
            self._quarantine(file, q.reason, q.error_class, q.detail, q.file_sha256)
            outcome = "quarantined"
        except DecodeError as exc:  # unreadable, empty or oversize: never hashed
            self._quarantine(file, exc.reason, _error_class(exc), str(exc), None)
            outcome = "quarantined"
        except (CatalogError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug of ours must not lose the rest of the run either
            self._quarantine(file, INTERNAL_ERROR, type(exc).__name__, short_error(exc), None)
            outcome = "quarantined"
        if outcome == "duplicate":
            self.summary.duplicate += 1
        elif outcome == "accepted":
            self.summary.accepted += 1
        if len(self.pending_sources) + len(self.pending_quarantine) >= self.config.batch_size:
            self.flush()

    def _one(self, file: Path) -> Outcome:
        entry = None
        if self.entries is not None:
            entry = self.entries.get(str(file))
            if entry is None:
                raise _Quarantine(
                    NOT_IN_MANIFEST, "ConfigError", "file is not listed in the manifest"
                )
        data = read_limited(file, self.config)
        fsha = hashlib.sha256(data).hexdigest()
        if entry is not None and self._already_there(entry, fsha):
            return "duplicate"
        try:
            decoded = decode_bytes(
                data,
                self.config,
                tags=tuple(dict.fromkeys(t for t in (self.tag, self.label_tag, BURNED_IN_TAG) if t)),
                target=self.config.size,
                grayscale=self.config.channels == 1,
            )
        except DecodeError as exc:
            raise _Quarantine(exc.reason, _error_class(exc), str(exc), fsha) from exc
        notes = [*decoded.notes, *self._provenance(data, decoded.format, decoded.tags, fsha)]
        subject = entry.subject_id if entry else decoded.tags.get(self.tag or "")
        if not subject:
            raise _Quarantine(
                NO_SUBJECT_TAG,
                "ConfigError",
                f"{decoded.format} file has no value for tag {self.tag}",
                fsha,
            )
        pixels = normalize(decoded.image, self.config)
        chash = content_hash(pixels)
        label = entry.label if entry else None
        if self.label_tag is not None:
            label = self._tag_label(decoded.tags.get(self.label_tag), decoded.format, fsha)
        record_id = (entry.record_id if entry else None) or derive_record_id(subject, chash)
        existing = self.known.records.get(record_id)
        if existing is not None:
            if existing[:3] == (subject, chash, label):
                self.known.by_file[(fsha, subject)] = record_id
                return "duplicate"
            raise _Quarantine(
                RECORD_CONFLICT,
                "CatalogError",
                _conflict(record_id, existing, subject, chash, label),
                fsha,
            )
        image_path = self._store(pixels, chash)
        if self.known.subjects_by_content.get(chash, set()) - {subject}:
            self.summary.shared_content += 1
        simulated = bool(entry and entry.simulated)
        self.summary.simulated += simulated
        record = SourceRecord(
            record_id=record_id,
            subject_id=subject,
            label=label,
            content_hash=chash,
            file_sha256=fsha,
            original_format=decoded.format,
            original_mode=decoded.mode,
            original_width=decoded.width,
            original_height=decoded.height,
            original_frames=decoded.frames,
            width=int(pixels.shape[1]),
            height=int(pixels.shape[0]),
            channels=1 if pixels.ndim == 2 else int(pixels.shape[2]),
            image_path=image_path,
            source_path=str(file),
            decode_notes="; ".join(notes),
            simulated=simulated,
            run_id=self.summary.run_id,
            ingested_at=datetime.now(UTC),
        )
        self.known.add(record)
        self.pending_sources.append(record)
        return "accepted"

    def _provenance(self, data: bytes, fmt: str, tags: dict[str, str], fsha: str) -> list[str]:
        """Quarantine what the file itself declares off limits (an opt-out, a generated
        image, burned-in text, an unreadable declaration); the notes for the record."""
        if not self.config.read_provenance:
            return []
        verdict = read_provenance(data, fmt, dicom_tags=tags, config=self.config)
        if verdict.reason is not None:
            raise _Quarantine(verdict.reason, verdict.error_class or "ProvenanceError",
                              verdict.detail, fsha)
        return list(verdict.notes)

    def _tag_label(self, value: str | None, fmt: str, fsha: str) -> str | None:
        """The label a tag gives: none without the tag (never a quarantine: the file is
        still a source), a quarantine when its value cannot name a class folder."""
        if value is None:
            return None
        try:
            return canonical_label(value)
        except ValueError as exc:
            raise _Quarantine(INVALID_LABEL, "ConfigError",
                              f"{fmt} tag {self.label_tag}: {exc}", fsha) from exc

    def _already_there(self, entry: ManifestRow, fsha: str) -> bool:
        """The same file for the same subject and label is in already: skip decoding."""
        rid = entry.record_id or self.known.by_file.get((fsha, entry.subject_id))
        have = self.known.records.get(rid) if rid else None
        return (
            have is not None
            and have[0] == entry.subject_id
            and have[2] == entry.label
            and have[3] == fsha
        )

    def _store(self, pixels: np.ndarray, chash: str) -> str:
        """Write the PNG once, atomically (temp file + rename); return its home-relative path."""
        relative = f"{SOURCES_DIR}/{chash[:2]}/{chash}.png"
        target = os.path.join(self.catalog.home, relative)
        if not os.path.exists(target):
            folder = os.path.dirname(target)
            if folder not in self.folders:
                os.makedirs(folder, exist_ok=True)
                self.folders.add(folder)
            tmp = os.path.join(folder, f".{chash}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(encode_png(pixels))
            os.replace(tmp, target)
        return relative

    def _quarantine(
        self, file: Path, reason: str, error_class: str, detail: str, fsha: str | None
    ) -> None:
        self.summary.quarantined += 1
        self.reasons[reason] += 1
        self.summary.quarantined_by_reason = dict(sorted(self.reasons.items()))
        self.pending_quarantine.append(
            QuarantineEntry(
                path=str(file),
                file_sha256=fsha,
                reason=str(reason),
                error_class=error_class,
                detail=detail,
                run_id=self.summary.run_id,
                quarantined_at=datetime.now(UTC),
            )
        )

    def flush(self, run: IngestRun | None = None) -> None:
        """Record pending rows (and the run row) in one short transaction."""
        self.catalog.record(self.pending_sources, self.pending_quarantine, [run] if run else [])
        self.pending_sources.clear()
        self.pending_quarantine.clear()


class _Quarantine(Exception):
    """A rejection decided by ingest rules rather than by the decoder."""

    def __init__(self, reason: str, error_class: str, detail: str, file_sha256: str | None = None):
        super().__init__(detail)
        self.reason = reason
        self.error_class = error_class
        self.detail = detail
        self.file_sha256 = file_sha256


def _error_class(exc: DecodeError) -> str:
    """The class that actually failed (Pillow's, pydicom's), else DecodeError itself."""
    return type(exc.__cause__ or exc).__name__


def derive_record_id(subject_id: str, chash: str) -> str:
    """A stable record id when the manifest gives none: same subject + pixels, same id."""
    return "src-" + hashlib.sha256(f"{subject_id}\x1f{chash}".encode()).hexdigest()[:24]


def _conflict(
    record_id: str,
    existing: tuple[str, str, str | None, str],
    subject: str,
    chash: str,
    label: str | None,
) -> str:
    diffs = [
        name
        for name, old, new in (
            ("subject", existing[0], subject),
            ("pixels", existing[1], chash),
            ("label", existing[2], label),
        )
        if old != new
    ]
    return f"record {record_id} is already in the catalog with another {', '.join(diffs)}"
