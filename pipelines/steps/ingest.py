"""Ingest: untrusted files in, normalised metadata-free sources and quarantine rows out.

`ingest(path, manifest=..., subject_from_tag=..., label_from_tag=..., home=..., config=...)`
walks a file or a
folder and, for every regular file, either accepts it or quarantines it; nothing is
dropped silently and no bad file stops the run (DESIGN.md invariant 4). Decoding is
`validation`'s job; `ingest_file` decides each file's identity and records it.

- Every record needs a subject (no subject means no consent): from the manifest CSV
  (`validation.sources.manifest`) or, for DICOM folders, from a tag such as PatientID. Files in
  the folder that the manifest does not list are quarantined as `not_in_manifest`.
- A record's label (its class) comes from the manifest's `label` column or, for DICOM,
  from a tag such as BodyPartExamined (`label_from_tag`); a file without one has no label
  (a class-conditional build leaves it out), one whose value cannot name a class folder is
  quarantined as `invalid_label`.
- What a file declares about itself is read from its raw bytes before anything is
  stripped (`validation.sources.provenance`): a C2PA / CAWG training-mining opt-out or an
  XMP `plus:DataMining` prohibition is quarantined as `training_opt_out`, an AI-generated
  image (digitalSourceType) as `synthetic_input`, a DICOM with BurnedInAnnotation = YES as
  `burned_in_annotation` (unless `IngestConfig.burned_in_annotation = "accept"`), and a
  provenance block that cannot be read as `provenance_unreadable` (fail closed).
- An accepted image is normalised (`IngestConfig`: default 64x64 grayscale, letterboxed)
  and stored once under `<home>/sources/<hh>/<content_hash>.png`.
- Identity: the manifest's `record_id`, else one derived from subject and content hash.
  Re-ingesting the same file adds nothing (`duplicate`); the same pixels for two
  subjects are two records (counted as `shared_content` so it is never silent); the
  same record id with other subject, pixels or label is quarantined as
  `record_conflict`, never overwritten.
- A catalog holds sources of one shape; an ingest with another size or channel count is
  refused up front rather than mixing shapes (`stored_shape` is what the CLI defaults to).
- A label tag that identifies (PS3.15 Annex E, private tags) is refused before any file
  is read: labels are published as class folder names.
- Catalog writes are batched: one short transaction per `batch_size` files. PNGs are
  written before their rows, so an interrupted run leaves at most unreferenced PNGs,
  and running it again completes it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from consentgen.errors import ConfigError
from pipelines.catalog import Catalog, IngestRun
from pipelines.steps.ingest_file import FileIntake, IngestConfig, IngestSummary, Known
from validation.sources.dicom import check_label_tag, resolve_tag
from validation.sources.manifest import ManifestRow, read_manifest


def ingest(
    path: str | os.PathLike[str],
    *,
    manifest: str | os.PathLike[str] | None = None,
    subject_from_tag: str | None = None,
    label_from_tag: str | None = None,
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
    if label_from_tag is not None:
        check_label_tag(label_from_tag)  # an identifying attribute never names a class
    if subject_from_tag is not None:
        resolve_tag(subject_from_tag)  # unknown tag names fail now, not per file
    catalog = Catalog(home)
    manifest_path = Path(os.path.abspath(manifest)) if manifest is not None else None
    entries = _manifest_entries(root, manifest_path) if manifest_path else None
    if label_from_tag is not None and entries and any(e.label is not None for e in entries.values()):
        raise ConfigError(f"manifest {manifest_path} has labels and --label-from-tag "
                          f"{label_from_tag} was given: take labels from one of them")
    _check_shape(catalog, config)
    run = FileIntake(
        catalog=catalog,
        config=config,
        entries=entries,
        tag=subject_from_tag,
        label_tag=label_from_tag,
        known=Known(catalog.source_keys()),
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
            label_tag=label_from_tag,
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


def stored_shape(home: str | os.PathLike[str] | None) -> tuple[int, int, int] | None:
    """The (width, height, channels) the home's sources are stored at, or None when it has
    none yet (or, from before shapes were checked, more than one). A home holds one
    shape, so this, not the build file, is what a further ingest must normalise to."""
    shapes = Catalog(home).source_shapes()
    return next(iter(shapes)) if len(shapes) == 1 else None


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
