"""Ingest: untrusted files in, normalised metadata-free sources and quarantine rows out.

`ingest(path, manifest=..., subject_from_tag=..., home=..., config=...)` walks a file or a
folder and, for every regular file, either accepts it or quarantines it; nothing is
dropped silently and no bad file stops the run (DESIGN.md invariant 4). Decoding is
`validation`'s job; this module decides identity and records it.

- Every record needs a subject (no subject means no consent): from the manifest CSV
  (`validation.sources.manifest`) or, for DICOM folders, from a tag such as PatientID. Files in
  the folder that the manifest does not list are quarantined as `not_in_manifest`.
- An accepted image is normalised (`IngestConfig`: default 64x64 grayscale, letterboxed)
  and stored once under `<home>/sources/<hh>/<content_hash>.png`.
- Identity: the manifest's `record_id`, else one derived from subject and content hash.
  Re-ingesting the same file adds nothing (`duplicate`); the same pixels for two
  subjects are two records (counted as `shared_content` so it is never silent); the
  same record id with other subject, pixels or label is quarantined as
  `record_conflict`, never overwritten.
- A catalog holds sources of one shape; an ingest with another size or channel count is
  refused up front rather than mixing shapes.
- Catalog writes are batched: one short transaction per `batch_size` files. PNGs are
  written before their rows, so an interrupted run leaves at most unreferenced PNGs,
  and running it again completes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, PositiveInt
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from consentgen.errors import CatalogError, ConfigError, DecodeError
from pipelines.catalog import SOURCES_DIR, Catalog, IngestRun, QuarantineEntry, SourceRecord
from validation.sources.decode import DecodeConfig, decode_bytes, read_limited, short_error
from validation.sources.dicom import resolve_tag
from validation.sources.manifest import ManifestRow, read_manifest
from validation.sources.normalize import NormalizeConfig, content_hash, encode_png, normalize

# Reasons decided here rather than by the decoder (see validation.sources.decode.Reason for those).
NOT_IN_MANIFEST = "not_in_manifest"
NO_SUBJECT_TAG = "no_subject_tag"
RECORD_CONFLICT = "record_conflict"
INTERNAL_ERROR = "internal_error"


class IngestConfig(DecodeConfig, NormalizeConfig):
    """Decoding limits, the normalised shape, and how often the catalog is written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: PositiveInt = 500


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
class _Known:
    """What the catalog (and this run so far) holds, for dedupe without a query per file."""

    records: dict[str, tuple[str, str, int | None, str]]
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


def ingest(
    path: str | os.PathLike[str],
    *,
    manifest: str | os.PathLike[str] | None = None,
    subject_from_tag: str | None = None,
    home: str | os.PathLike[str] | None = None,
    config: IngestConfig | None = None,
    progress: bool = False,
) -> IngestSummary:
    """Ingest the file or folder at `path` into the catalog of `home`.

    Raises `ConfigError` before touching anything when the arguments or the manifest are
    wrong, and `CatalogError` when the catalog cannot be written; bad files never raise.
    """
    config = config or IngestConfig()
    root = Path(os.path.abspath(path))
    if not root.exists():
        raise ConfigError(f"{path}: no such file or folder")
    if (manifest is None) == (subject_from_tag is None):
        raise ConfigError(
            "say whose images these are: give --manifest FILE or --subject-from-tag TAG "
            "(exactly one)"
        )
    if subject_from_tag is not None:
        resolve_tag(subject_from_tag)  # unknown tag names fail now, not per file
    catalog = Catalog(home)
    manifest_path = Path(os.path.abspath(manifest)) if manifest is not None else None
    entries = _manifest_entries(root, manifest_path) if manifest_path else None
    _check_shape(catalog, config)
    run = _Run(
        catalog=catalog,
        config=config,
        entries=entries,
        tag=subject_from_tag,
        known=_Known(catalog.source_keys()),
        summary=IngestSummary(run_id=uuid.uuid4().hex[:16], root=str(root)),
    )
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    files = list(_walk(root, skip={p for p in (manifest_path, catalog.home) if p}))
    with _progress_bar(progress, len(files)) as advance:
        for file in files:
            run.process(file)
            advance()
    run.summary.seconds = round(time.perf_counter() - t0, 3)
    run.flush(
        IngestRun(
            run_id=run.summary.run_id,
            root=str(root),
            manifest=str(manifest_path) if manifest_path else None,
            subject_tag=subject_from_tag,
            started_at=started,
            finished_at=datetime.now(UTC),
            files_seen=run.summary.files_seen,
            accepted=run.summary.accepted,
            duplicate=run.summary.duplicate,
            quarantined=run.summary.quarantined,
            config_json=json.dumps(config.model_dump(mode="json"), sort_keys=True),
        )
    )
    return run.summary


def _manifest_entries(root: Path, manifest: Path) -> dict[str, ManifestRow]:
    """Manifest rows keyed by absolute path; a row naming no file fails the whole ingest."""
    base = root if root.is_dir() else root.parent
    rows = read_manifest(manifest)
    entries: dict[str, ManifestRow] = {}
    problems: list[str] = []
    for row in rows:
        target = os.path.normpath(os.path.join(base, row.path))
        if os.path.commonpath([target, str(base)]) != str(base):
            problems.append(f"line {row.line}: {row.path!r} is outside {base}")
        elif not os.path.lexists(target):
            problems.append(f"line {row.line}: {row.path!r} does not exist under {base}")
        else:
            entries[target] = row
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ConfigError(
            f"manifest {manifest}: {len(problems)} bad line(s), nothing ingested: "
            f"{'; '.join(problems[:5])}{more}"
        )
    return entries


def _check_shape(catalog: Catalog, config: IngestConfig) -> None:
    wanted = (config.size[0], config.size[1], config.channels)
    shapes = catalog.source_shapes() - {wanted}
    if shapes:
        have = ", ".join(f"{w}x{h}x{c}" for w, h, c in sorted(shapes))
        raise ConfigError(
            f"the catalog holds sources of shape {have}; this ingest asks for "
            f"{wanted[0]}x{wanted[1]}x{wanted[2]} (width x height x channels): use the same "
            "--size and --channels, or a new data home"
        )


def _walk(root: Path, skip: set[Path]) -> Iterator[Path]:
    """Every non-directory entry under `root`, sorted; symlinked folders are not followed
    (no loops, no escaping the tree) and `skip` paths (the manifest, the data home) are left out."""
    if not root.is_dir():
        yield root
        return
    skipped = {str(p) for p in skip}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) not in skipped)
        # A symlinked folder is not walked, but it is reported (quarantined), not skipped.
        linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(filenames + linked):
            full = os.path.join(dirpath, name)
            if full not in skipped:
                yield Path(full)


@dataclass
class _Run:
    catalog: Catalog
    config: IngestConfig
    entries: dict[str, ManifestRow] | None
    tag: str | None
    known: _Known
    summary: IngestSummary
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
                tags=(self.tag,) if self.tag else (),
                target=self.config.size,
                grayscale=self.config.channels == 1,
            )
        except DecodeError as exc:
            raise _Quarantine(exc.reason, _error_class(exc), str(exc), fsha) from exc
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
            decode_notes="; ".join(decoded.notes),
            simulated=simulated,
            run_id=self.summary.run_id,
            ingested_at=datetime.now(UTC),
        )
        self.known.add(record)
        self.pending_sources.append(record)
        return "accepted"

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
    existing: tuple[str, str, int | None, str],
    subject: str,
    chash: str,
    label: int | None,
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


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr when asked for; yields the "one more done" callback."""
    if not enabled or total == 0:
        yield lambda: None
        return
    bar = Progress(
        TextColumn("ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("ingest", total=total)
    with bar:
        yield lambda: bar.advance(task)
