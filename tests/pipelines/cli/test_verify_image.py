"""`consentgen verify-image`: the manifest, the XMP source type and the watermark of an
image stamped the way publish stamps it (`ReleaseStamp`, the home's development signer),
read back through the console script; then untrusted, tampered with, re-saved without
its metadata (the tag alone authenticates nothing), signed by a certificate expired
since, a trusted manifest not ours, files that are no image, --size out of bounds, and
running out of memory."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import c2pa
import numpy as np
import pytest
from PIL import Image

from consentgen.errors import ReleaseError
from pipelines.cli.provenance_cmds import (
    EXIT_EXPIRED,
    EXIT_NOT_OURS,
    EXIT_NOT_VERIFIED,
    EXIT_TAG_ONLY,
    EXIT_UNCHECKED,
    EXIT_UNTRUSTED,
    EXIT_VERIFIED,
)
from pipelines.settings import GeneratorSettings, quick_profile
from pipelines.steps.provenance import ReleaseStamp
from tests.c2pa_certs import TRAINED, TestCredentials, created, make_credentials
from tests.pipelines.cli.console import ok, run
from tests.c2pa_certs import make_chain
from validation.release.provenance import ReleaseProvenance, Stamper
from validation.release.signer import CA_FILE, DEV_SIGNER_DIR, SigningCredentials
from validation.release.watermark import MIN_WATERMARK_SIZE, embed_watermark

ROOT = Path(__file__).resolve().parents[3]
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
        assert code == EXIT_TAG_ONLY == 5  # not 0: the tag alone authenticates nothing
        assert line(out, "watermark") == "watermark  found: release v0001"
        assert line(out, "verdict").startswith("verdict    RELEASE TAG FOUND: not authenticated "
                                               "(release v0001)")
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
        assert code == EXIT_TAG_ONLY, out
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


def test_anyone_can_embed_a_release_tag_so_it_authenticates_nothing(home: Path, tmp_path: Path) -> None:
    """The tag is public and unkeyed: a stranger's image tagged v0003 is no release image."""
    stranger = Image.fromarray(np.random.default_rng(7).integers(0, 256, (64, 64), dtype=np.uint8))
    forged = tmp_path / "forged.png"
    embed_watermark(stranger, "v0003").save(forged)
    code, out, _ = verify(home, str(forged))
    assert code == EXIT_TAG_ONLY and code != EXIT_VERIFIED
    assert line(out, "watermark") == "watermark  found: release v0003"
    assert "not authenticated" in line(out, "verdict") and "anyone can embed" in line(out, "verdict")


# --- a signer whose certificate expired after signing ----------------------------------

PROVENANCE = ReleaseProvenance(release="v0001", generator="ddpm", ledger_head=HEAD)


@pytest.fixture(scope="module")
def expired(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dt.datetime]:
    """(an image, its CA, the leaf's expiry): signed by a leaf valid for a few seconds, and
    returned once the leaf has expired. The SDK refuses to sign with an expired
    certificate, so the only real way to such a file is to wait for one to expire."""
    folder = tmp_path_factory.mktemp("expired")
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (SMALL, SMALL), dtype=np.uint8))
    for seconds in (2, 5, 15):  # a slower machine gets a longer-lived leaf
        start = dt.datetime.now(dt.UTC).replace(microsecond=0)
        end = start + dt.timedelta(seconds=seconds)
        chain, key, ca = make_chain(start - dt.timedelta(days=30), end, "brief")
        try:
            with Stamper(SigningCredentials(chain_pem=chain, key_pem=key, trust_pem=ca),
                         PROVENANCE) as stamper:
                data = stamper.stamp(image)
            break
        except ReleaseError:  # it expired before the SDK signed
            continue
    else:
        pytest.fail("could not sign within a leaf's validity")
    time.sleep(max(0.0, (end - dt.datetime.now(dt.UTC)).total_seconds()) + 1.5)
    (folder / "image.png").write_bytes(data)
    (folder / "ca.pem").write_bytes(ca)
    return folder / "image.png", folder / "ca.pem", end


def test_a_signature_whose_certificate_expired_has_its_own_verdict(
        home: Path, expired: tuple[Path, Path, dt.datetime]) -> None:
    image, ca, end = expired
    code, out, _ = verify(home, str(image), "--trust", str(ca))
    assert code == EXIT_EXPIRED == 4
    assert "signingCredential.expired" in line(out, "C2PA ")
    assert line(out, "verdict") == (
        f"verdict    EXPIRED: signed, but the signing certificate expired on "
        f"{end:%Y-%m-%d %H:%M} UTC; without a trusted timestamp the signature cannot be "
        f"checked any more (exit {EXIT_EXPIRED})")
    assert "altered" not in out
    code, out, _ = verify(home, str(image), "--trust", str(ca), "--json")
    report = json.loads(out)
    assert code == report["exit_code"] == EXIT_EXPIRED
    assert dt.datetime.fromisoformat(report["manifest"]["certificate_not_after"]) == end


def test_an_expired_signature_on_altered_pixels_is_still_altered(
        home: Path, expired: tuple[Path, Path, dt.datetime], tmp_path: Path) -> None:
    image, ca, _ = expired
    data = bytearray(image.read_bytes())
    data[data.index(b"IDAT") + 8] ^= 0x01
    altered = tmp_path / "altered.png"
    altered.write_bytes(bytes(data))
    code, out, _ = verify(home, str(altered), "--trust", str(ca))
    assert code == EXIT_NOT_VERIFIED
    assert "assertion.dataHash.mismatch" in line(out, "C2PA ")
    assert "the file was altered after signing" in line(out, "verdict")


# --- a trusted signer, a manifest that is not ours --------------------------------------

def signed_as_consentgen(assertions: list[dict[str, Any]], creds: TestCredentials, *,
                         thumbnail: bool = False) -> bytes:
    """A 16 px PNG with a manifest holding `assertions`, claim generator consentgen."""
    plain = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (SMALL, SMALL), dtype=np.uint8)).save(
        plain, "PNG")
    manifest = {"claim_generator_info": [{"name": "consentgen"}], "assertions": assertions}
    context = c2pa.Context(settings=c2pa.Settings.from_dict(
        {"builder": {"thumbnail": {"enabled": thumbnail}}}))
    out = io.BytesIO()
    with creds.signer() as signer, c2pa.Builder(json.dumps(manifest), context=context) as b:
        b.sign(signer, "image/png", io.BytesIO(plain.getvalue()), out)
    return out.getvalue()


OURS = PROVENANCE.assertions()


@pytest.mark.parametrize(("assertions", "thumbnail", "problem"), [
    (OURS, False, None),
    ([created(TRAINED)], False, "missing assertion cawg.training-mining"),
    (OURS, True, "a thumbnail"),
    ([*OURS, {"label": "org.example.note", "data": {"note": "hello"}}], False,
     "unexpected assertion org.example.note"),
    ([*OURS[:2], {"label": "org.consentgen.release", "data": {"release": "v0001"}}], False,
     "org.consentgen.release lacks"),
])
def test_a_trusted_manifest_must_hold_our_provenance(
        home: Path, tmp_path: Path, assertions: list[dict[str, Any]], thumbnail: bool,
        problem: str | None) -> None:
    creds = make_credentials("hospital")
    image, ca = tmp_path / "image.png", tmp_path / "ca.pem"
    image.write_bytes(signed_as_consentgen(assertions, creds, thumbnail=thumbnail))
    ca.write_bytes(creds.ca_pem)
    code, out, _ = verify(home, str(image), "--trust", str(ca))
    assert line(out, "C2PA ") == "C2PA       Trusted"
    if problem is None:
        assert code == EXIT_VERIFIED, out
        assert line(out, "verdict").startswith("verdict    verified:")
    else:
        assert code == EXIT_NOT_OURS == 6, out
        verdict = line(out, "verdict")
        assert verdict.startswith("verdict    NOT OURS: a trusted signer, but the manifest is not "
                                  "consentgen's release provenance")
        assert problem in verdict


# --- bounds --------------------------------------------------------------------------

@pytest.mark.parametrize("size", ["4097", "100000", "0"])
def test_a_size_out_of_bounds_is_one_line(home: Path, tmp_path: Path, size: str) -> None:
    image = tmp_path / "plain.png"
    Image.fromarray(np.zeros((SMALL, SMALL), np.uint8)).save(image)
    code, out, err = verify(home, str(image), "--size", size)
    assert code == EXIT_UNCHECKED and out == ""
    assert err.strip() == f"error: --size {size}: must be between 1 and 4096"


def test_running_out_of_memory_is_one_line(tmp_path: Path) -> None:
    """A real MemoryError: run under an address-space limit just above its imports'."""
    image = tmp_path / "plain.png"
    Image.fromarray(np.zeros((MIN_WATERMARK_SIZE, MIN_WATERMARK_SIZE), np.uint8)).save(image)
    code = ("import resource, sys\n"
            "from pipelines.cli import app\n"
            "import c2pa, cv2, imwatermark, numpy, pywt, PIL.Image, pipelines.cli.provenance_cmds\n"
            "import validation.release.watermark, validation.sources.decode\n"
            "import validation.sources.c2pa_store, validation.sources.xmp\n"
            "status = open('/proc/self/status').read().split('VmSize:')[1].split()[0]\n"
            "limit = int(status) * 1024 + 64 * 2**20\n"
            "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
            "sys.argv = ['consentgen', 'verify-image', sys.argv[1], '--size', '4096']\n"
            "app()\n")
    env = {**os.environ, "CONSENTGEN_HOME": str(tmp_path / "nohome"), "COLUMNS": "300",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(image)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == EXIT_UNCHECKED, done.stderr[-2000:]
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: {image}: out of memory while checking it"
