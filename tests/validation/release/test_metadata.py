"""Identifying metadata: found in inputs, absent from everything ingest writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.catalog import Catalog
from pipelines.steps.ingest import ingest
from tests import files as f
from validation.release.metadata import find_identifying_metadata, find_identifying_metadata_in
from validation.sources.normalize import encode_png


def kinds(findings) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(x.kind, x.key) for x in findings}


@pytest.fixture
def identifying_inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    card = f.pattern()
    (folder / "gps.jpg").write_bytes(
        f.encode(card, "JPEG", exif=f.gps_exif(), comment=b"Jane Patient", icc_profile=b"\0" * 128)
    )
    (folder / "text.png").write_bytes(f.png_with_text(card))
    (folder / "patient.dcm").write_bytes(f.dicom(np.arange(64).reshape(8, 8)))
    (folder / "overlay.dcm").write_bytes(f.testdata("examples_overlay.dcm").read_bytes())
    return folder


def test_inputs_carry_what_we_look_for(identifying_inputs: Path) -> None:
    jpeg = kinds(find_identifying_metadata(identifying_inputs / "gps.jpg"))
    assert {
        ("exif", "APP1"),
        ("exif_gps", "APP1"),
        ("comment", "COM"),
        ("icc_profile", "APP2"),
    } <= jpeg
    png = kinds(find_identifying_metadata(identifying_inputs / "text.png"))
    assert {
        ("png_text", "Author"),
        ("png_text", "Comment"),
        ("png_text", "Description"),
        ("exif", "eXIf"),
        ("exif_gps", "eXIf"),
    } <= png
    for name in ("patient.dcm", "overlay.dcm"):
        dicom = kinds(find_identifying_metadata(identifying_inputs / name))
        assert {
            ("dicom_tag", "PatientName"),
            ("dicom_tag", "PatientBirthDate"),
            ("dicom_tag", "PatientAddress"),
        } <= dicom, name


def test_findings_never_repeat_values(identifying_inputs: Path) -> None:
    text = " ".join(
        f"{x.kind} {x.key} {x.detail}"
        for name in ("gps.jpg", "text.png", "patient.dcm")
        for x in find_identifying_metadata(identifying_inputs / name)
    )
    for value in ("Jane", "Leeds", "12345", "1970", "Doe", "PAT-0001"):
        assert value not in text


def test_ingested_sources_are_clean(identifying_inputs: Path, home: Path) -> None:
    manifest = f.write_manifest(
        identifying_inputs.parent / "m.csv",
        [
            {"path": n, "subject_id": f"s{i}"}
            for i, n in enumerate(sorted(p.name for p in identifying_inputs.iterdir()))
        ],
    )
    summary = ingest(identifying_inputs, manifest=manifest, home=home)
    assert summary.accepted == 4
    catalog = Catalog(home)
    files = [catalog.image_file(r) for r in catalog.sources()]
    assert len(files) == 4 and all(p.is_file() for p in files)
    for path in files:
        assert find_identifying_metadata(path) == [], path
        data = path.read_bytes()
        for value in (b"Jane", b"Leeds", b"Exif", b"ScannerCo", b"Doe^Jane", b"PAT-0001"):
            assert value not in data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            encode_png(np.zeros((4, 4), np.uint8)) + b"Exif\0\0MM\0*",
            {("trailing_data", "after IEND"), ("exif", "embedded")},
        ),
        (
            encode_png(np.zeros((4, 4), np.uint8))[:-12]
            + f.png_chunk(b"prVt", b"x" * 9)
            + f.png_chunk(b"IEND", b""),
            {("png_chunk", "prVt")},
        ),
        (
            encode_png(np.zeros((4, 4), np.uint8))[:-12]
            + f.png_chunk(b"tIME", b"\x07\xe8\x01\x01\0\0\0")
            + f.png_chunk(b"IEND", b""),
            {("png_time", "tIME")},
        ),
        (f.encode(f.pattern(), "JPEG", xmp=b"<x:xmpmeta>who</x:xmpmeta>"), {("xmp", "APP1")}),
        (f.encode(f.pattern(), "JPEG") + b"appended secrets", {("trailing_data", "after EOI")}),
        (b"not an image at all", {("unparsed", "unknown")}),
        (encode_png(np.zeros((4, 4), np.uint8))[:45], {("unparsed", "IDAT")}),
        (encode_png(np.zeros((4, 4), np.uint8))[:-12], {("unparsed", "PNG")}),
    ],
    ids=[
        "after-iend",
        "private-chunk",
        "time",
        "jpeg-xmp",
        "after-eoi",
        "garbage",
        "cut-idat",
        "no-iend",
    ],
)
def test_checker_reports_hidden_places(data: bytes, expected: set[tuple[str, str]]) -> None:
    assert expected <= kinds(find_identifying_metadata_in(data))


def test_clean_files_have_no_findings() -> None:
    assert find_identifying_metadata_in(encode_png(np.zeros((4, 4, 3), np.uint8))) == []
    assert find_identifying_metadata_in(f.encode(f.pattern(), "JPEG")) == []
