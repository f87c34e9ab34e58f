"""A corpus of malformed and odd inputs through one real ingest: nothing crashes, nothing
is dropped, every file is accepted correctly or quarantined with its specific reason."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.pixels import get_decoder

from pipelines.catalog import Catalog, SourceRecord
from pipelines.steps.ingest import ingest
from tests import files as f
from validation.release.metadata import find_identifying_metadata

Check = Callable[[SourceRecord, np.ndarray], None]


def left_bright(record: SourceRecord, arr: np.ndarray) -> None:
    """The test card's white left half survived decoding and normalisation."""
    row = arr[32]
    assert row[8:24].min() > 200 and row[40:56].max() < 60, row


def all_black(record: SourceRecord, arr: np.ndarray) -> None:
    assert arr.max() == 0


def near(value: int, tol: int = 3) -> Check:
    def check(record: SourceRecord, arr: np.ndarray) -> None:
        assert abs(int(arr[32, 32]) - value) <= tol, arr[32, 32]

    return check


def rotated_six(record: SourceRecord, arr: np.ndarray) -> None:
    """EXIF orientation 6 turns the card 90 degrees clockwise: the white half is on top."""
    assert (record.original_width, record.original_height) == (48, 32)
    column = arr[:, 32]
    assert column[4:28].min() > 200 and column[36:60].max() < 60, column
    assert "EXIF orientation 6 applied" in record.decode_notes


def uniform(value: int) -> Check:
    def check(record: SourceRecord, arr: np.ndarray) -> None:
        assert arr.min() == arr.max() == value, (arr.min(), arr.max())

    return check


def first_of(frames: int) -> Check:
    def check(record: SourceRecord, arr: np.ndarray) -> None:
        assert record.original_frames == frames
        assert f"first of {frames} frames taken" in record.decode_notes

    return check


def dicom_ok(photometric: str, note: str | None = None) -> Check:
    def check(record: SourceRecord, arr: np.ndarray) -> None:
        assert record.original_format == "DICOM"
        assert record.original_mode.startswith(photometric + "/")
        assert arr.std() > 5  # an image, not a blank
        if note:
            assert note in record.decode_notes

    return check


def fmt(name: str, then: Check | None = None) -> Check:
    def check(record: SourceRecord, arr: np.ndarray) -> None:
        assert record.original_format == name
        if then:
            then(record, arr)

    return check


def codec_expectation(name: str) -> str | Check:
    """JPEG lossless / JPEG-LS decode when a plugin is installed, else quarantine."""
    uid = dcmread(f.testdata(name), stop_before_pixels=True).file_meta.TransferSyntaxUID
    return dicom_ok("MONOCHROME2") if get_decoder(uid).is_available else "dicom_codec_unavailable"


def build_corpus() -> dict[str, tuple[bytes, str | Check]]:
    card = f.pattern()
    png = f.encode(card, "PNG")
    jpg = f.encode(card, "JPEG", quality=95)
    ct = f.testdata("CT_small.dcm").read_bytes()
    ramp = np.zeros((8, 8))
    ramp[:, 4:] = 4095
    corpus: dict[str, tuple[bytes, str | Check]] = {
        # good and odd modes
        "card_rgb.png": (png, fmt("PNG", left_bright)),
        "card_1.png": (f.encode(card.convert("1"), "PNG"), left_bright),
        "card_l.png": (f.encode(card.convert("L"), "PNG"), left_bright),
        "card_la.png": (f.encode(card.convert("LA"), "PNG"), left_bright),
        "card_p.png": (f.encode(card.convert("P"), "PNG"), left_bright),
        "card_p_transparent.png": (f.encode(card.convert("P"), "PNG", transparency=0), left_bright),
        "card_i16.png": (f.encode(card.convert("L").convert("I;16"), "PNG"), left_bright),
        "card_i16b.png": (f.encode(card.convert("L").convert("I;16B"), "PNG"), left_bright),
        "clear_rgba.png": (f.encode(Image.new("RGBA", (20, 20), (255, 0, 0, 0)), "PNG"), all_black),
        "card_cmyk.jpg": (f.encode(card.convert("CMYK"), "JPEG", quality=95), left_bright),
        "card_l.jpg": (f.encode(card.convert("L"), "JPEG", quality=95), left_bright),
        "card_rgb.jpg": (jpg, fmt("JPEG", left_bright)),
        "animated.png": (f.apng([(255, 0, 0), (0, 255, 0), (0, 0, 255)]), near(76)),
        "rotated.jpg": (
            f.encode(card, "JPEG", quality=95, exif=f.gps_exif(orientation=6)),
            rotated_six,
        ),
        "gps.jpg": (f.encode(card, "JPEG", exif=f.gps_exif()), left_bright),
        "text_chunks.png": (f.png_with_text(card), left_bright),
        # wrong extensions: content decides
        "really_jpeg.png": (jpg, fmt("JPEG", left_bright)),
        "really_png.dcm": (png, fmt("PNG", left_bright)),
        "really_dicom.png": (ct, dicom_ok("MONOCHROME2")),
        "no_extension": (png, fmt("PNG")),
        # empty, not images, other formats
        "empty.png": (b"", "empty_file"),
        "notes.png": (b"patient notes, not an image\n" * 20, "not_an_image"),
        "card.gif": (f.encode(card.convert("P"), "GIF"), "unsupported_format"),
        "card.tif": (f.encode(card, "TIFF"), "unsupported_format"),
        "card.bmp": (f.encode(card, "BMP"), "unsupported_format"),
        "card.webp": (f.encode(card, "WEBP"), "unsupported_format"),
        # truncations at several offsets
        "png_cut_8.png": (png[:8], "corrupt_image"),
        "png_cut_40.png": (png[:40], "corrupt_image"),
        "png_cut_100.png": (png[:100], "truncated"),
        "png_cut_half.png": (png[: len(png) // 2], "truncated"),
        "jpg_cut_20.jpg": (jpg[:20], "corrupt_image"),
        "jpg_cut_300.jpg": (jpg[:300], "truncated"),
        "jpg_cut_half.jpg": (jpg[: len(jpg) // 2], "truncated"),
        "dcm_cut_5000.dcm": (ct[:5000], "truncated"),
        "dcm_cut_half.dcm": (ct[: len(ct) // 2], "truncated"),
        "dcm_garbage.dcm": (ct[:128] + b"DICM" + b"\xff" * 300, "dicom_invalid"),
        # bombs: refused from the header, before any pixel is decoded
        "bomb_header.png": (f.png_header_only(9000, 8000), "too_many_pixels"),
        "bomb_giant.jpg": (f.jpeg_with_size(jpg, 60000, 60000), "too_many_pixels"),
        "zero_width.png": (f.png_header_only(0, 100), "corrupt_image"),
        # built DICOM variants
        "mono1.dcm": (f.dicom(ramp, photometric="MONOCHROME1", bits_stored=12), left_bright),
        "rescale_window.dcm": (
            f.dicom(np.full((8, 8), 1064), slope=1.0, intercept=-1024.0, window=(40, 400)),
            uniform(128),
        ),
        "frames.dcm": (
            f.dicom(
                np.stack([np.full((8, 8), v) for v in (100, 200, 300)]), frames=3, window=(150, 101)
            ),
            lambda r, a: (first_of(3)(r, a), uniform(1)(r, a)),
        ),
        "float.dcm": (
            f.dicom(np.linspace(0, 1, 64).reshape(8, 8), float_pixels=True),
            dicom_ok("MONOCHROME2"),
        ),
        "float_nan.dcm": (f.dicom(np.full((8, 8), np.nan), float_pixels=True), "nonfinite_pixels"),
    }
    real = {
        "CT_small.dcm": dicom_ok("MONOCHROME2", "modality rescale applied"),
        "MR_small.dcm": dicom_ok("MONOCHROME2", "window LINEAR center 600 width 1600 applied"),
        "examples_overlay.dcm": dicom_ok("MONOCHROME2"),
        "RG1_UNCR.dcm": dicom_ok("MONOCHROME1", "MONOCHROME1 inverted"),
        "US1_UNCR.dcm": dicom_ok("RGB"),
        "emri_small.dcm": first_of(10),
        "OT-PAL-8-face.dcm": dicom_ok("PALETTE COLOR", "no transfer syntax in file"),
        "MR_truncated.dcm": "truncated",
        "rtplan.dcm": "dicom_no_pixel_data",
        "badVR.dcm": "dicom_invalid",
        "JPEG-LL.dcm": codec_expectation("JPEG-LL.dcm"),
        "JPGLosslessP14SV1_1s_1f_8b.dcm": codec_expectation("JPGLosslessP14SV1_1s_1f_8b.dcm"),
        "MR_small_jpeg_ls_lossless.dcm": codec_expectation("MR_small_jpeg_ls_lossless.dcm"),
    }
    for name, expected in real.items():
        corpus[f"pydicom_{name}"] = (f.testdata(name).read_bytes(), expected)
    return corpus


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory):
    """One ingest of the whole corpus (plus a FIFO, a symlinked folder and an unlisted
    file) into a fresh home; shared by the assertions below."""
    root = tmp_path_factory.mktemp("corpus")
    home = tmp_path_factory.mktemp("home")
    corpus = build_corpus()
    folder = root / "in"
    folder.mkdir()
    for name, (data, _) in corpus.items():
        (folder / name).write_bytes(data)
    os.mkfifo(folder / "a_fifo")
    (root / "elsewhere").mkdir()
    os.symlink(root / "elsewhere", folder / "linked_folder")
    (folder / "unlisted.png").write_bytes(f.encode(f.pattern(), "PNG"))
    listed = [*corpus, "a_fifo", "linked_folder"]
    manifest = f.write_manifest(
        root / "manifest.csv",
        [{"path": n, "subject_id": f"subj-{i:03d}"} for i, n in enumerate(listed)],
    )
    summary = ingest(folder, manifest=manifest, home=home)  # must not raise
    return corpus, summary, Catalog(home), folder


def test_corpus_is_large_enough(corpus_run) -> None:
    corpus, *_ = corpus_run
    quarantine_cases = [n for n, (_, exp) in corpus.items() if isinstance(exp, str)]
    assert len(corpus) >= 30 and len(quarantine_cases) >= 15


def test_every_file_is_accounted_for(corpus_run) -> None:
    corpus, summary, catalog, _ = corpus_run
    expected_files = len(corpus) + 3  # FIFO, symlinked folder, unlisted file
    assert summary.files_seen == expected_files
    assert summary.accepted + summary.duplicate + summary.quarantined == expected_files
    assert len(catalog.sources()) == summary.accepted
    assert len(catalog.quarantined()) == summary.quarantined
    assert sum(summary.quarantined_by_reason.values()) == summary.quarantined


def test_quarantined_files_have_their_specific_reason(corpus_run) -> None:
    corpus, _, catalog, folder = corpus_run
    got = {Path(q.path).name: q for q in catalog.quarantined()}
    expected = {n: exp for n, (_, exp) in corpus.items() if isinstance(exp, str)}
    expected.update(
        a_fifo="not_a_regular_file",
        linked_folder="not_a_regular_file",
        **{"unlisted.png": "not_in_manifest"},
    )
    assert {n: q.reason for n, q in got.items()} == expected
    for q in got.values():
        assert q.error_class and q.detail and q.path.startswith(str(folder))


def test_quarantine_rows_name_the_failing_library_class(corpus_run) -> None:
    _, _, catalog, _ = corpus_run
    classes = {Path(q.path).name: q.error_class for q in catalog.quarantined()}
    assert classes["notes.png"] == "UnidentifiedImageError"
    assert classes["bomb_giant.jpg"] == "DecompressionBombError"
    assert classes["bomb_header.png"] == "DecodeError"  # our own header check
    assert classes["unlisted.png"] == "ConfigError"


def test_accepted_files_decode_correctly(corpus_run) -> None:
    corpus, _, catalog, _ = corpus_run
    records = {Path(r.source_path).name: r for r in catalog.sources()}
    expected = {n: exp for n, (_, exp) in corpus.items() if not isinstance(exp, str)}
    assert set(records) == set(expected)
    for name, check in expected.items():
        record = records[name]
        arr = np.asarray(Image.open(catalog.image_file(record)))
        assert arr.shape == (64, 64) and arr.dtype == np.uint8, name
        assert (record.width, record.height, record.channels) == (64, 64, 1)
        try:
            check(record, arr)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


def test_accepted_sources_carry_no_metadata(corpus_run) -> None:
    _, _, catalog, _ = corpus_run
    pngs = sorted(catalog.sources_dir.rglob("*.png"))
    assert len(pngs) == len({r.content_hash for r in catalog.sources()}) >= 15
    assert {p.name: find_identifying_metadata(p) for p in pngs} == {p.name: [] for p in pngs}
