"""Decoder and normaliser behaviour on files built in the test."""

from __future__ import annotations

import io
import subprocess
import sys
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from consentgen.errors import ConfigError, DecodeError
from tests import files as f
from validation.sources.decode import DecodeConfig, Reason, decode_bytes, decode_file
from validation.sources.dicom import apply_window, resolve_tag
from validation.sources.normalize import NormalizeConfig, content_hash, encode_png, normalize
from validation.sources.pixels import to_8bit

ALL_FORMATS = DecodeConfig(formats=("PNG", "JPEG", "TIFF", "WEBP"))


def reason_of(data: bytes, config: DecodeConfig | None = None) -> str:
    with pytest.raises(DecodeError) as caught:
        decode_bytes(data, config)
    return caught.value.reason


def mode_image(mode: str) -> Image.Image:
    """The test card in `mode` (built from grayscale where a direct convert does not exist)."""
    card = f.pattern()
    try:
        return card.convert(mode)
    except ValueError:
        return card.convert("L").convert(mode)


@pytest.mark.parametrize("mode", Image.MODES)
def test_every_pil_mode_becomes_8bit_with_the_pattern_kept(mode: str) -> None:
    im = mode_image(mode)
    assert im.mode == mode
    for container in ("TIFF", "WEBP", "PNG"):
        try:
            data = f.encode(im, container)
        except (OSError, ValueError, KeyError):
            continue
        decoded = decode_bytes(data, ALL_FORMATS)
        out = decoded.image
        break
    else:  # no container writes this mode (e.g. "La"): convert the in-memory image
        out = to_8bit(im, [])
    assert out.mode in ("L", "RGB")
    assert out.size == (48, 32)
    gray = np.asarray(out.convert("L"))
    assert gray[16, 4] > 200 and gray[16, 40] < 60, (mode, gray[16, 4], gray[16, 40])


def test_alpha_is_composited_over_black() -> None:
    half = Image.new("RGBA", (10, 10), (255, 255, 255, 255))
    half.paste((255, 255, 255, 0), (5, 0, 10, 10))
    decoded = decode_bytes(f.encode(half, "PNG"))
    arr = np.asarray(decoded.image.convert("L"))
    assert arr[:, :5].min() == 255 and arr[:, 5:].max() == 0
    assert "alpha composited over black" in decoded.notes


def test_animated_png_first_frame_or_rejected() -> None:
    data = f.apng([(0, 0, 255), (255, 255, 255)])
    decoded = decode_bytes(data)
    assert decoded.frames == 2
    assert np.asarray(decoded.image)[0, 0].tolist() == [0, 0, 255]
    assert reason_of(data, DecodeConfig(multiframe="reject")) == Reason.MULTIFRAME_REJECTED


def test_multiframe_dicom_rejected_on_request() -> None:
    data = f.dicom(np.zeros((2, 4, 4)), frames=2)
    assert decode_bytes(data).frames == 2
    assert reason_of(data, DecodeConfig(multiframe="reject")) == Reason.MULTIFRAME_REJECTED


def test_pixel_limit_is_per_call_and_leaves_no_global_state() -> None:
    data = f.encode(Image.new("L", (100, 100)), "PNG")
    pillow_limit = Image.MAX_IMAGE_PIXELS
    filters = list(warnings.filters)
    assert reason_of(data, DecodeConfig(max_pixels=9_999)) == Reason.TOO_MANY_PIXELS
    assert reason_of(f.png_header_only(30_000, 30_000)) == Reason.TOO_MANY_PIXELS
    assert decode_bytes(data, DecodeConfig(max_pixels=10_000)).width == 100
    assert Image.MAX_IMAGE_PIXELS == pillow_limit
    assert list(warnings.filters) == filters


def test_dicom_pixel_limit_checked_before_decoding() -> None:
    data = f.dicom(np.zeros((40, 40)))
    assert reason_of(data, DecodeConfig(max_pixels=1_000)) == Reason.TOO_MANY_PIXELS


def test_file_size_limit_and_special_files(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(f.encode(f.pattern(), "PNG"))
    with pytest.raises(DecodeError) as caught:
        decode_file(big, DecodeConfig(max_file_bytes=100))
    assert caught.value.reason == Reason.FILE_TOO_LARGE
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(DecodeError) as caught:
        decode_file(fifo)
    assert caught.value.reason == Reason.NOT_A_REGULAR_FILE
    with pytest.raises(DecodeError) as caught:
        decode_file(tmp_path / "missing.png")
    assert caught.value.reason == Reason.UNREADABLE


def test_exif_orientation_swaps_axes_but_records_stored_size() -> None:
    data = f.encode(f.pattern(), "JPEG", quality=95, exif=f.gps_exif(orientation=8))
    decoded = decode_bytes(data)
    assert (decoded.width, decoded.height) == (48, 32)
    assert decoded.image.size == (32, 48)
    assert decoded.image.info == {}  # no EXIF travels with the pixels
    gray = np.asarray(decoded.image.convert("L"))
    # orientation 8 turns 90 degrees counter-clockwise: the white left half goes to the bottom
    assert gray[40, 16] > 200 and gray[8, 16] < 60


def test_monochrome1_inverted_and_rescale_window_applied() -> None:
    plain = f.dicom(np.array([[0, 4095]] * 2), bits_stored=12)
    inverted = f.dicom(np.array([[0, 4095]] * 2), bits_stored=12, photometric="MONOCHROME1")
    assert np.asarray(decode_bytes(plain).image)[0].tolist() == [0, 255]
    assert np.asarray(decode_bytes(inverted).image)[0].tolist() == [255, 0]
    # raw 1024 + intercept -1024 = 0 HU; LINEAR window (0, 100): (0 + 0.5) / 99 + 0.5 -> 129
    ct = f.dicom(np.array([[0, 1024, 2048]]), slope=1.0, intercept=-1024.0, window=(0, 100))
    assert np.asarray(decode_bytes(ct).image)[0].tolist() == [0, 129, 255]
    full = decode_bytes(
        f.dicom(np.array([[1000, 1024, 1048]]), slope=1.0, intercept=-1024.0, window=(0, 10)),
        DecodeConfig(dicom_window="full_range"),
    )
    assert np.asarray(full.image)[0].tolist() == [0, 128, 255]


def test_window_functions_follow_the_standard() -> None:
    x = np.array([-200.0, 39.5, 40.0, 240.0])
    linear = apply_window(x, 40, 400, "LINEAR")
    assert linear[0] == 0.0 and linear[1] == pytest.approx(0.5) and linear[3] == 1.0
    exact = apply_window(x, 40, 400, "LINEAR_EXACT")
    assert exact[2] == pytest.approx(0.5) and exact[3] == 1.0
    sigmoid = apply_window(x, 40, 400, "SIGMOID")
    assert sigmoid[2] == pytest.approx(0.5) and 0 < sigmoid[0] < 0.25 and 0.75 < sigmoid[3] < 1


def test_dicom_tags_are_read_on_request() -> None:
    decoded = decode_bytes(f.dicom(np.zeros((4, 4))), tags=("PatientID", "0010,0010", "StudyID"))
    assert decoded.tags == {"PatientID": "PAT-0001", "0010,0010": "Doe^Jane"}


def test_tag_names() -> None:
    assert (
        resolve_tag("PatientID")
        == resolve_tag("(0010,0020)")
        == resolve_tag("00100020")
        == 0x00100020
    )
    with pytest.raises(ConfigError, match="unknown DICOM tag"):
        resolve_tag("PatientIdentifier")


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        DecodeConfig(formats=("PNG", "NOPE"))
    with pytest.raises(ValidationError):
        NormalizeConfig(size="64x")
    assert NormalizeConfig(size="64x32").size == (64, 32)
    assert NormalizeConfig(size=32).size == (32, 32)


def test_fit_modes_and_channels() -> None:
    wide = Image.new("RGB", (80, 40), (255, 0, 0))
    padded = normalize(wide, NormalizeConfig(size=40))
    assert padded.shape == (40, 40)
    assert padded[0].max() == 0 and padded[-1].max() == 0 and padded[20, 20] == 76
    assert normalize(wide, NormalizeConfig(size=40, fit="crop")).min() == 76
    assert normalize(wide, NormalizeConfig(size=40, fit="stretch")).min() == 76
    colour = normalize(wide, NormalizeConfig(size=(20, 10), channels=3))
    assert colour.shape == (10, 20, 3) and colour[5, 10].tolist() == [255, 0, 0]


def test_png_encoding_has_only_pixel_chunks_and_hash_sees_shape() -> None:
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    data = encode_png(pixels)
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    assert content_hash(pixels) != content_hash(pixels.reshape(4, 16))
    assert content_hash(pixels) == content_hash(pixels.copy())


def test_validation_modules_stay_inside_their_boundary() -> None:
    """DESIGN.md: validation never imports Dagster, DuckDB, pipelines, consent or generators."""
    code = (
        "import sys; import validation.sources.decode, validation.sources.dicom, validation.release.metadata, "
        "validation.sources.normalize, validation.sources.manifest, validation.sources.pixels; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'dagster', 'duckdb', 'pipelines', 'consent', 'generators', 'torch'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


def test_importing_the_decoder_leaves_pydicom_unloaded() -> None:
    """PNG-only callers (and the types in validation.sources.pixels) do not pay for pydicom."""
    code = (
        "import sys; import validation.sources.decode, validation.sources.pixels; "
        "print('pydicom' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "False"


def test_a_file_that_grows_while_read_is_refused_and_small_reads_reserve_little(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_limited reads what stat said plus one byte: a file still being written (it
    holds more than stat saw) is refused, and a small file is read without reserving the
    whole 512 MiB limit (a process under a 64 MiB address-space limit still reads it)."""
    path = tmp_path / "growing.png"
    path.write_bytes(f.encode(f.pattern(), "PNG"))
    real_stat = os.stat

    def stat_before_growth(p, *args, **kwargs):  # type: ignore[no-untyped-def]
        info = real_stat(p, *args, **kwargs)
        if Path(p) != path:
            return info
        return os.stat_result((info.st_mode, info.st_ino, info.st_dev, info.st_nlink,
                               info.st_uid, info.st_gid, info.st_size - 10, info.st_atime,
                               info.st_mtime, info.st_ctime))

    monkeypatch.setattr(os, "stat", stat_before_growth)
    with pytest.raises(DecodeError, match="grew while it was read") as caught:
        decode_file(path)
    assert caught.value.reason == Reason.UNREADABLE
    monkeypatch.undo()
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31)); "
            "from validation.sources.decode import DecodeConfig, read_limited; "
            "print(len(read_limited(sys.argv[1], DecodeConfig(max_file_bytes=4 << 30))))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr[-500:]
    assert int(done.stdout) == path.stat().st_size
