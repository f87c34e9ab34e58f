"""`consentgen verify-image`: the manifest, the XMP source type and the watermark of an
image stamped the way publish stamps it (`ReleaseStamp`, the home's development signer),
read back through the console script; then the same image untrusted, tampered with,
re-saved without its metadata, and files that are no image at all."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.cli.provenance_cmds import EXIT_NOT_VERIFIED, EXIT_UNCHECKED, EXIT_UNTRUSTED
from pipelines.settings import GeneratorSettings, quick_profile
from pipelines.steps.provenance import ReleaseStamp
from tests.c2pa_certs import TRAINED, make_credentials
from tests.pipelines.cli.console import ok, run
from validation.release.signer import CA_FILE, DEV_SIGNER_DIR
from validation.release.watermark import MIN_WATERMARK_SIZE

HEAD = hashlib.sha256(b"ledger head").hexdigest()
SMALL = 16  # the test preset's size: no watermark


def published(home: Path, side: int, name: str = "a.png", *, smooth: bool = False) -> Path:
    """A candidate PNG of `side` px (noise, or a smooth pattern like a scan's), stamped as
    publish stamps release v0001's images."""
    config = quick_profile(generator=GeneratorSettings(preset="base", image_size=side))
    source = home.parent / f"candidate-{name}"
    if smooth:
        y, x = np.mgrid[0:side, 0:side]
        pixels = (128 + 60 * np.sin(x / 7) * np.cos(y / 9)).astype(np.uint8)
    else:
        pixels = np.random.default_rng(side).integers(0, 256, (side, side), dtype=np.uint8)
    Image.fromarray(pixels).save(source)
    target = home.parent / "release" / "images" / "tumour" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with ReleaseStamp(home, config, "v0001", HEAD) as stamp:
        stamp.write(source, target)
    return target


@pytest.fixture
def initialised(home: Path) -> Path:
    ok(home, "init")  # the home's development signer
    return home


def verify(home: Path, *args: str) -> tuple[int, str, str]:
    done = run(home, "verify-image", *args, timeout=300)
    return done.returncode, done.stdout, done.stderr


def line(out: str, key: str) -> str:
    found = [x for x in out.splitlines() if x.startswith(key)]
    assert len(found) == 1, out
    return found[0]


def test_a_published_image_verifies_against_the_homes_anchors(initialised: Path) -> None:
    image = published(initialised, MIN_WATERMARK_SIZE)
    code, out, err = verify(initialised, str(image))
    assert code == 0, out + err
    assert f"{initialised / DEV_SIGNER_DIR / CA_FILE} (home development CA)" in line(out, "trust ")
    assert line(out, "C2PA ") == "C2PA       Trusted"
    assert "consentgen release signer" in line(out, "  signer")
    assert line(out, "  created") == f"  created  digitalSourceType {TRAINED}"
    assert line(out, "  training") == ("  training cawg.ai_generative_training notAllowed, "
                                       "cawg.ai_inference notAllowed, cawg.ai_training notAllowed, "
                                       "cawg.data_mining notAllowed")
    assert line(out, "  release") == f"  release  v0001, generator ddpm, consent ledger head {HEAD}"
    assert line(out, "XMP ") == f"XMP        DigitalSourceType {TRAINED}"
    assert line(out, "watermark") == "watermark  found: release v0001"
    assert "development CA: trusted here only" in line(out, "verdict") and "(exit 0)" in out

    code, out, _ = verify(initialised, str(image), "--json")
    report = json.loads(out)
    assert code == report["exit_code"] == 0
    assert report["manifest"]["state"] == "Trusted" and report["manifest"]["codes"] == []
    assert report["manifest"]["assertions"] == ["c2pa.actions.v2", "cawg.training-mining",
                                                "org.consentgen.release"]
    assert report["manifest"]["release"] == {"release": "v0001", "generator": "ddpm",
                                             "consent_ledger_head": HEAD}
    assert report["xmp"]["digital_source_types"] == [TRAINED]
    assert report["watermark"] == {"checked": True, "found": True, "release": "v0001",
                                   "note": "found: release v0001"}
    assert report["trust"]["development"] is True


def test_a_foreign_ca_does_not_trust_it(initialised: Path, tmp_path: Path) -> None:
    image = published(initialised, SMALL)
    foreign = tmp_path / "foreign.pem"
    foreign.write_bytes(make_credentials("foreign").ca_pem)
    code, out, _ = verify(initialised, str(image), "--trust", str(foreign))
    assert code == EXIT_UNTRUSTED == 3
    assert f"{foreign} (--trust)" in line(out, "trust ")
    assert line(out, "C2PA ") == "C2PA       Valid but untrusted signer: signingCredential.untrusted"
    assert "does not chain to the trust anchors" in line(out, "verdict")
    # the provenance it declares is still reported
    assert line(out, "  release") == f"  release  v0001, generator ddpm, consent ledger head {HEAD}"


def test_without_any_anchors_the_signer_cannot_be_trusted(initialised: Path, tmp_path: Path) -> None:
    image = published(initialised, SMALL)
    elsewhere = tmp_path / "not-a-home"
    elsewhere.mkdir()
    code, out, _ = verify(elsewhere, str(image))
    assert code == EXIT_UNTRUSTED
    assert line(out, "trust ") == "trust      none: no --trust and no anchors in the home"
    assert "no trust anchors were given" in line(out, "verdict")
    assert not any(elsewhere.iterdir())  # verify-image makes no signer, no home


def test_a_flipped_pixel_byte_fails_validation(initialised: Path) -> None:
    image = published(initialised, SMALL)
    data = bytearray(image.read_bytes())
    at = data.index(b"IDAT") + 8
    data[at] ^= 0x01
    image.write_bytes(bytes(data))
    code, out, _ = verify(initialised, str(image))
    assert code == EXIT_NOT_VERIFIED == 1
    assert line(out, "C2PA ").startswith("C2PA       Invalid: ")
    assert "assertion.dataHash.mismatch" in line(out, "C2PA ")
    assert "NOT VERIFIED: the C2PA manifest fails validation" in line(out, "verdict")


@pytest.mark.parametrize("side", [MIN_WATERMARK_SIZE, SMALL])
def test_a_resave_loses_the_metadata_but_not_the_watermark(initialised: Path, side: int) -> None:
    image = published(initialised, side)
    with Image.open(image) as im:
        im.load()
        resaved = image.with_name("resaved.png")
        im.save(resaved)  # Pillow writes neither the iTXt XMP nor the caBX C2PA chunk
    code, out, _ = verify(initialised, str(resaved))
    assert line(out, "C2PA ") == "C2PA       none: the file carries no C2PA manifest"
    assert line(out, "XMP ") == "XMP        no DigitalSourceType (0 packet(s))"
    if side >= MIN_WATERMARK_SIZE:
        assert code == 0
        assert line(out, "watermark") == "watermark  found: release v0001"
        assert "verified by the watermark only (release v0001)" in line(out, "verdict")
    else:
        assert code == EXIT_NOT_VERIFIED
        assert line(out, "watermark") == (f"watermark  not checked: {side} px is below "
                                          f"{MIN_WATERMARK_SIZE} px, the smallest size that "
                                          "carries it reliably")
        assert "carries none of our provenance" in line(out, "verdict")


def test_size_reads_the_watermark_of_a_resized_copy(initialised: Path) -> None:
    image = published(initialised, MIN_WATERMARK_SIZE, smooth=True)
    for side in (2 * MIN_WATERMARK_SIZE, MIN_WATERMARK_SIZE - 6):
        copy = image.with_name(f"resized-{side}.png")
        with Image.open(image) as im:
            im.resize((side, side), Image.Resampling.BICUBIC).save(copy)
        code, out, _ = verify(initialised, str(copy), "--size", str(MIN_WATERMARK_SIZE))
        assert code == 0, out
        assert line(out, "watermark") == "watermark  found: release v0001"
        assert line(out, "file ").endswith(f"(PNG, {side}×{side})")
    code, out, _ = verify(initialised, str(copy))  # at its own size it is too small
    assert code == EXIT_NOT_VERIFIED
    assert line(out, "watermark").startswith(f"watermark  not checked: {MIN_WATERMARK_SIZE - 6} px")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb() -> bytes:
    """A PNG whose header declares 100k x 100k pixels: refused from the header."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("garbage.png", b"\x00not an image at all" * 50, "not_an_image"),
    ("empty.png", b"", "empty_file"),
    ("bomb.png", bomb(), "too_many_pixels"),
    ("truncated.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, None),
    ("folder", None, "not_a_regular_file"),
    ("missing.png", "missing", "unreadable"),
])
def test_what_is_not_an_image_is_one_line(home: Path, tmp_path: Path, name: str,
                                          content: bytes | str | None, reason: str | None) -> None:
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    code, out, err = verify(home, str(path))
    assert code == EXIT_UNCHECKED == 2
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and str(path) in err and "Traceback" not in err
    if reason is not None:
        assert reason in err


def test_a_bad_trust_file_is_one_line(initialised: Path, tmp_path: Path) -> None:
    image = published(initialised, SMALL)
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"not a certificate")
    code, out, err = verify(initialised, str(image), "--trust", str(bad))
    assert code == EXIT_UNCHECKED and out == ""
    assert err.strip() == f"error: trust anchors: {bad} holds no PEM certificate"


def test_jpeg_bytes_are_read_too(initialised: Path, tmp_path: Path) -> None:
    """A JPEG copy (someone converted the image): no manifest, no XMP, checked as JPEG."""
    image = published(initialised, SMALL)
    jpeg = tmp_path / "copy.jpg"
    with Image.open(image) as im:
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=95)
    jpeg.write_bytes(buffer.getvalue())
    code, out, _ = verify(initialised, str(jpeg))
    assert code == EXIT_NOT_VERIFIED
    assert line(out, "file ").endswith(f"({'JPEG'}, {SMALL}×{SMALL})")
