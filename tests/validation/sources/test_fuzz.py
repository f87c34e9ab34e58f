"""Random byte mutations of valid PNG, JPEG and DICOM files: the decoder either returns an
image or raises DecodeError; no other exception escapes, and the metadata check never
raises either (it fails closed with an "unparsed" finding)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentgen.errors import DecodeError
from tests import files as f
from validation.sources.decode import DecodeConfig, DecodedImage, decode_bytes
from validation.release.metadata import find_identifying_metadata_in
from validation.sources.normalize import normalize

SEEDS = {
    "png": f.png_with_text(f.pattern(24, 16)),
    "jpeg": f.encode(f.pattern(24, 16), "JPEG", quality=80, exif=f.gps_exif(orientation=6)),
    "apng": f.apng([(255, 0, 0), (0, 255, 0)], size=(8, 8)),
    "dicom": f.testdata("MR_small.dcm").read_bytes(),
    "dicom_rle": f.testdata("MR_small_RLE.dcm").read_bytes(),
    "dicom_built": f.dicom(np.arange(64).reshape(8, 8), slope=2.0, intercept=-5.0, window=(40, 80)),
}
CONFIG = DecodeConfig(max_pixels=4_000_000)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, draw(st.integers(0, 255))]))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "splice":  # a header-sized field overwritten with extreme values
            data[at : at + 4] = draw(
                st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
            )
    return bytes(data)


@settings(
    max_examples=1000,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=mutated())
def test_mutations_raise_only_decode_error(data: bytes) -> None:
    try:
        decoded = decode_bytes(data, CONFIG, tags=("PatientID",), target=(64, 64), grayscale=True)
    except DecodeError as exc:
        assert exc.reason  # a stable code is always set
        return
    assert isinstance(decoded, DecodedImage)
    assert decoded.image.mode in ("L", "RGB")
    assert normalize(decoded.image).shape == (64, 64)


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(data=mutated())
def test_metadata_check_never_raises(data: bytes) -> None:
    findings = find_identifying_metadata_in(data)
    assert all(x.kind for x in findings)


def test_seeds_themselves_decode() -> None:
    """The fuzz starts from files that are valid, so mutations probe near-valid input."""
    for name, data in SEEDS.items():
        assert decode_bytes(data, CONFIG).image.size[0] > 0, name
