"""`consentgen ingest PATH (--manifest FILE | --subject-from-tag TAG) [--label-from-tag TAG]`.

Sources are normalised to the size and channels the home's sources are stored at (a home
holds one shape); into a home without sources yet, to the size and channels its build
file generates at (`generator.image_size`, at least 64 px; `generator.channels`), so a
build at 128 px finds sources of 128 px; `--size` / `--channels` say otherwise. A
`--label-from-tag` attribute that identifies (DICOM PS3.15 Annex E, private tags) is
refused before anything is read: labels are published as class folder names.

A file that declares itself off limits is quarantined with a reason: `training_opt_out`
(C2PA / CAWG training-mining notAllowed, XMP `plus:DataMining` PROHIBITED),
`synthetic_input` (an AI-generated digitalSourceType), `burned_in_annotation` (DICOM
BurnedInAnnotation = YES; `--burned-in-annotation accept` takes those, with a note) and
`provenance_unreadable` (a C2PA store or XMP packet that cannot be read: fail closed).

Prints the summary (accepted / duplicate / quarantined by reason). Anticipated failures
(a wrong manifest, a locked catalog) print one line on stderr and exit 1; bad image
files are never failures, they are quarantined and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from consentgen.errors import ConfigError, ConsentgenError
from pipelines.buildfile import load_config
from pipelines.cli.common import HomeOption, console, err_console, resolve_home
from pipelines.steps.ingest_file import IngestConfig, IngestSummary
from pipelines.steps.ingest import ingest as run_ingest
from pipelines.steps.ingest import stored_shape
from validation.sources.dicom import check_label_tag


def ingest(
    path: Annotated[Path, typer.Argument(help="A file or folder of PNG, JPEG or DICOM files.")],
    manifest: Annotated[
        Path | None,
        typer.Option(help="CSV with path, subject_id[, label, record_id, simulated]."),
    ] = None,
    subject_from_tag: Annotated[
        str | None,
        typer.Option(help="Take each file's subject from this DICOM tag (e.g. PatientID)."),
    ] = None,
    label_from_tag: Annotated[
        str | None,
        typer.Option(help="Take each DICOM file's label from this categorical tag (e.g. "
                          "BodyPartExamined, Modality); a file without it gets no label. "
                          "Identifying attributes (PS3.15 Annex E) and private tags are refused."),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(help="Normalised size: N or WxH (default: the size the home's sources "
                          "are stored at; without any, the build file's generator.image_size, "
                          "at least 64).", show_default=False),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(help="1 = grayscale, 3 = RGB (default: the home's sources'; without any, "
                          "the build file's generator.channels).",
                     show_default=False),
    ] = None,
    fit: Annotated[str, typer.Option(help="pad, crop or stretch to the size.")] = "pad",
    max_pixels: Annotated[
        int, typer.Option(help="Largest frame (width x height) decoded; larger is quarantined.")
    ] = IngestConfig().max_pixels,
    multiframe: Annotated[
        str, typer.Option(help="Animated / multi-frame input: 'first' frame or 'reject'.")
    ] = "first",
    burned_in_annotation: Annotated[
        str,
        typer.Option(help="DICOM files marked BurnedInAnnotation = YES carry text in their "
                          "pixels (often a name, an ID or a date) that no metadata stripping "
                          "removes: 'quarantine' keeps them out; 'accept' takes them, with a "
                          "note on each record, for data whose burned-in text you know "
                          "identifies no one."),
    ] = "quarantine",
    home: HomeOption = None,
) -> None:
    """Ingest source images: decode defensively, normalise, record; quarantine the rest."""
    try:
        if label_from_tag is not None:
            check_label_tag(label_from_tag)  # before the home, the build file or any image
        root = resolve_home(home)
        if size is None or channels is None:
            size, channels = _default_shape(root, size, channels)
        config = _config(size, channels, fit, max_pixels, multiframe, burned_in_annotation)
        summary = run_ingest(
            path,
            manifest=manifest,
            subject_from_tag=subject_from_tag,
            label_from_tag=label_from_tag,
            home=root,
            config=config,
            progress=True,
        )
    except ConsentgenError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    print_summary(summary)


MIN_DEFAULT_SIZE = 64
"""The smallest default size: what sources were always kept at; a build at a smaller size
resizes them down, and one at a larger size needs them stored larger."""


def _default_shape(root: Path, size: str | None, channels: int | None) -> tuple[str, int]:
    """What `--size` / `--channels` default to: the shape the home's sources are stored at
    when it has any (a home holds one shape, so after editing generator.image_size a
    routine ingest still fits), else the build file's generator.image_size (at least
    MIN_DEFAULT_SIZE) and generator.channels. Says so when the build file asks for larger
    images than the home holds, as the build would refuse them."""
    generator = load_config(None, home=root).generator
    stored = stored_shape(root)
    if stored is None:
        wanted = str(max(MIN_DEFAULT_SIZE, generator.image_size))
        return (wanted if size is None else size,
                generator.channels if channels is None else channels)
    width, height, depth = stored
    if size is None and generator.image_size > min(width, height):
        err_console.print(
            f"note: this home's sources are stored at {width}x{height} px, so these are too; "
            f"generator.image_size = {generator.image_size} is larger: set generator.image_size "
            f"<= {min(width, height)}, or ingest into a new home with "
            f"`consentgen ingest DIR --size {generator.image_size}`", highlight=False,
            soft_wrap=True)
    return (f"{width}x{height}" if size is None else size,
            depth if channels is None else channels)


def _config(size: str, channels: int, fit: str, max_pixels: int, multiframe: str,
            burned_in_annotation: str) -> IngestConfig:
    try:
        return IngestConfig(
            size=size, channels=channels, fit=fit, max_pixels=max_pixels, multiframe=multiframe,
            burned_in_annotation=burned_in_annotation,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "option"
        raise ConfigError(f"--{where.replace('_', '-')}: {first['msg']}") from exc


def print_summary(summary: IngestSummary) -> None:
    """The run's counts, then one line per quarantine reason."""
    table = Table(title=f"ingest {summary.run_id}", show_header=False, box=None)
    table.add_row("files seen", str(summary.files_seen))
    table.add_row("accepted", str(summary.accepted))
    table.add_row("duplicate (already in)", str(summary.duplicate))
    table.add_row("quarantined", str(summary.quarantined))
    for reason, count in summary.quarantined_by_reason.items():
        table.add_row(f"  {reason}", str(count))
    if summary.shared_content:
        table.add_row("same pixels as another subject", str(summary.shared_content))
    if summary.simulated:
        table.add_row("simulated subjects (demo)", str(summary.simulated))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    console.print(table)
