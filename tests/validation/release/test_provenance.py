"""Our provenance on a published PNG: signed, read back, and allowed by the gate only when
it is exactly this release's; every other block (or a second one) is still refused."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from consentgen.errors import ConfigError
from tests import files as f
from tests.provenance_files import png_chunk_list
from tests.c2pa_certs import TRAINED, TestCredentials, created, make_credentials, sign_bytes
from validation.release.metadata import find_identifying_metadata_in
from validation.release.provenance import (
    ACTIONS,
    RELEASE_ASSERTION,
    TRAINING_MINING,
    XMP_PACKET,
    ExpectedProvenance,
    ReleaseProvenance,
    Stamper,
)
from validation.release.signer import SigningCredentials, load_credentials
from validation.sources.c2pa_store import read_c2pa
from validation.sources.xmp import read_xmp

HEAD = "7f" * 32
RELEASE = ReleaseProvenance(release="v0003", generator="ddpm", ledger_head=HEAD)


@pytest.fixture(scope="module")
def test_ca() -> TestCredentials:
    return make_credentials("release")


@pytest.fixture(scope="module")
def credentials(test_ca: TestCredentials, tmp_path_factory: pytest.TempPathFactory) -> SigningCredentials:
    folder = tmp_path_factory.mktemp("signer")
    for name, data in (("chain.pem", test_ca.chain_pem), ("key.pem", test_ca.key_pem),
                       ("ca.pem", test_ca.ca_pem)):
        (folder / name).write_bytes(data)
    return load_credentials(folder / "chain.pem", folder / "key.pem", folder / "ca.pem")


def grey(size: int = 32, seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((size, size)) * 255).astype(np.uint8))


def stamped(credentials: SigningCredentials, provenance: ReleaseProvenance = RELEASE,
            image: Image.Image | None = None) -> bytes:
    with Stamper(credentials, provenance) as stamper:
        return stamper.stamp(image or grey())


def expected(credentials: SigningCredentials, provenance: ReleaseProvenance = RELEASE
             ) -> ExpectedProvenance:
    return ExpectedProvenance(provenance=provenance, trust_pem=credentials.trust_pem)


def test_a_stamped_image_reads_back_trusted_with_exactly_our_assertions(
        credentials: SigningCredentials, test_ca: TestCredentials) -> None:
    data = stamped(credentials)
    store = read_c2pa(data, "image/png", trust_anchors=test_ca.ca_pem.decode())
    assert store is not None and store.state == "Trusted" and store.codes == ()
    manifest = store.active_manifest
    assert manifest is not None and len(store.manifests) == 1
    assert {a.label: a.data for a in manifest.assertions} == {
        ACTIONS: {"actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED}]},
        TRAINING_MINING: {"entries": {k: {"use": "notAllowed"} for k in (
            "cawg.ai_training", "cawg.ai_generative_training", "cawg.data_mining",
            "cawg.ai_inference")}},
        RELEASE_ASSERTION: {"release": "v0003", "generator": "ddpm", "consent_ledger_head": HEAD},
    }
    assert not manifest.thumbnail and manifest.ingredients == 0
    assert manifest.signer["common_name"] == "release signer"
    assert read_xmp(data).digital_source_types == (TRAINED,)
    assert sorted({ctype for ctype, _ in png_chunk_list(data)}) == sorted({b"IHDR", b"caBX", b"iTXt", b"IDAT", b"IEND"})
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(grey()))


def test_the_manifest_stays_small(credentials: SigningCredentials) -> None:
    plain = io.BytesIO()
    grey().save(plain, "PNG")
    assert len(stamped(credentials)) - len(plain.getvalue()) < 12_000  # a thumbnail alone is ~100 KB


def test_the_gate_allows_exactly_this_release_s_provenance(credentials: SigningCredentials) -> None:
    data = stamped(credentials)
    assert find_identifying_metadata_in(data, provenance=expected(credentials)) == []
    without = {(x.kind, x.key) for x in find_identifying_metadata_in(data)}
    assert {("c2pa", "caBX"), ("png_text", "XML:com.adobe.xmp")} <= without


@pytest.mark.parametrize("change", [
    {"release": "v0004"}, {"generator": "img2img"}, {"ledger_head": "00" * 32},
    {"training_mining": "allowed"},
])
def test_another_release_s_provenance_is_refused(credentials: SigningCredentials,
                                                 change: dict[str, str]) -> None:
    data = stamped(credentials)
    other = RELEASE.model_copy(update=change)
    found = find_identifying_metadata_in(data, provenance=expected(credentials, other))
    assert [(x.kind, x.detail) for x in found] == [
        ("c2pa", f"assertion {RELEASE_ASSERTION if 'training_mining' not in change else TRAINING_MINING}"
                 " differs from this release's")]


def test_a_signer_the_anchors_do_not_know_is_refused(credentials: SigningCredentials) -> None:
    data = stamped(credentials)
    stranger = ExpectedProvenance(provenance=RELEASE, trust_pem=make_credentials("other").ca_pem)
    details = [x.detail for x in find_identifying_metadata_in(data, provenance=stranger)]
    assert "validation failed: signingCredential.untrusted" in details


def test_changed_pixels_fail_the_data_hash(credentials: SigningCredentials) -> None:
    data = bytearray(stamped(credentials))
    data[data.find(b"IDAT") + 12] ^= 0x01
    details = [x.detail for x in find_identifying_metadata_in(bytes(data),
                                                             provenance=expected(credentials))]
    assert "validation failed: assertion.dataHash.mismatch" in details


def _insert_before_idat(data: bytes, ctype: bytes, body: bytes) -> bytes:
    at = data.find(b"IDAT") - 4
    chunk = struct.pack(">I4s", len(body), ctype) + body
    return data[:at] + chunk + struct.pack(">I", zlib.crc32(ctype + body)) + data[at:]


def test_any_other_chunk_is_still_refused(credentials: SigningCredentials) -> None:
    """Inserted after signing, a chunk also breaks the data hash; both are reported."""
    data = stamped(credentials)
    for ctype, body, kind in ((b"tEXt", b"Author\x00Jane Patient", "png_text"),
                              (b"tIME", b"\x07\xe8\x01\x01\0\0\0", "png_time"),
                              (b"prVt", b"x" * 9, "png_chunk")):
        found = find_identifying_metadata_in(_insert_before_idat(data, ctype, body),
                                             provenance=expected(credentials))
        assert kind in {x.kind for x in found}
        assert "validation failed: assertion.dataHash.mismatch" in {x.detail for x in found}


def test_text_signed_into_the_file_is_refused_though_the_hash_holds(
        credentials: SigningCredentials, test_ca: TestCredentials) -> None:
    """A file someone signed with our assertions but with a text chunk inside: the
    manifest verifies (it covers the chunk), yet the chunk is metadata."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Patient")
    info.add_itxt("XML:com.adobe.xmp", XMP_PACKET)
    buf = io.BytesIO()
    grey().save(buf, "PNG", pnginfo=info)
    signed = sign_bytes(buf.getvalue(), "image/png", RELEASE.assertions(), test_ca)
    found = find_identifying_metadata_in(signed, provenance=expected(credentials))
    assert ("png_text", "Author") in {(x.kind, x.key) for x in found}


def test_a_manifest_with_other_assertions_is_refused(credentials: SigningCredentials,
                                                     test_ca: TestCredentials) -> None:
    buf = io.BytesIO()
    grey().save(buf, "PNG")
    signed = sign_bytes(buf.getvalue(), "image/png", [created(TRAINED)], test_ca)
    details = {x.detail for x in find_identifying_metadata_in(signed, provenance=expected(credentials))}
    assert {f"missing assertion {TRAINING_MINING}", f"missing assertion {RELEASE_ASSERTION}"} <= details
    thumbed = sign_bytes(buf.getvalue(), "image/png", RELEASE.assertions(), test_ca, thumbnail=True)
    details = {x.detail for x in find_identifying_metadata_in(thumbed, provenance=expected(credentials))}
    assert "a thumbnail" in details
    assert "another claim generator" in details


def test_an_xmp_packet_that_is_not_exactly_ours_is_refused(credentials: SigningCredentials) -> None:
    data = stamped(credentials)
    ours = XMP_PACKET.encode()
    edited = data.replace(ours, ours.replace(b'about=""', b'about="x"'))
    kinds = {x.kind for x in find_identifying_metadata_in(edited, provenance=expected(credentials))}
    assert "png_text" in kinds or "xmp" in kinds


def test_bad_signing_files_fail_in_one_line(tmp_path: Path, test_ca: TestCredentials) -> None:
    (tmp_path / "chain.pem").write_bytes(test_ca.chain_pem)
    (tmp_path / "key.pem").write_bytes(make_credentials("other").key_pem)
    (tmp_path / "junk.pem").write_bytes(b"not a certificate")
    with pytest.raises(ConfigError, match="does not belong to the first certificate"):
        load_credentials(tmp_path / "chain.pem", tmp_path / "key.pem", None)
    with pytest.raises(ConfigError, match="holds no PEM certificate chain"):
        load_credentials(tmp_path / "junk.pem", tmp_path / "key.pem", None)
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        load_credentials(tmp_path / "chain.pem", tmp_path / "junk.pem", None)
    with pytest.raises(ConfigError, match="cannot read"):
        load_credentials(tmp_path / "missing.pem", tmp_path / "key.pem", None)


def test_a_jpeg_source_with_a_manifest_is_not_clean_for_the_gate(test_ca: TestCredentials) -> None:
    jpeg = sign_bytes(f.encode(f.pattern(), "JPEG"), "image/jpeg", [created()], test_ca)
    assert ("jpeg_app", "APP11") in {(x.kind, x.key) for x in find_identifying_metadata_in(jpeg)}
