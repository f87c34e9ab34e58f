"""What a file declares about itself: C2PA / CAWG training-mining, XMP Data Mining,
digitalSourceType, DICOM BurnedInAnnotation, and what cannot be read (fail closed).

Every input is a real file made here: Pillow images, XMP packets written into them,
manifests signed by c2pa-python with a certificate made in the test, DICOM by pydicom.
"""

from __future__ import annotations

import struct
import zlib

import pytest

from tests import files as f
from tests import provenance_files as pf
from tests.c2pa_certs import (
    TRAINED,
    TestCredentials,
    created,
    make_credentials,
    sign_bytes,
    sign_over,
    training_mining,
)
from validation.sources.decode import decode_bytes
from validation.sources.provenance import (
    BURNED_IN_ANNOTATION,
    BURNED_IN_TAG,
    PROVENANCE_UNREADABLE,
    SYNTHETIC_INPUT,
    TRAINING_OPT_OUT,
    ProvenanceConfig,
    ProvenanceVerdict,
    read_provenance,
    source_type_code,
)

MIMES = {"JPEG": "image/jpeg", "PNG": "image/png"}


@pytest.fixture(scope="module")
def creds() -> TestCredentials:
    return make_credentials("provenance")


def plain(fmt: str, seed: int = 0) -> bytes:
    return pf.jpeg(seed) if fmt == "JPEG" else pf.png(seed)


def signed(fmt: str, assertions: list[dict], creds: TestCredentials, seed: int = 0) -> bytes:
    return sign_bytes(plain(fmt, seed), MIMES[fmt], assertions, creds)


def verdict(data: bytes, fmt: str, **kwargs: object) -> ProvenanceVerdict:
    return read_provenance(data, fmt, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("spelling", ["c2pa", "cawg"])
@pytest.mark.parametrize("key", ["ai_training", "ai_generative_training", "data_mining"])
def test_a_training_key_not_allowed_is_an_opt_out(
    fmt: str, spelling: str, key: str, creds: TestCredentials
) -> None:
    got = verdict(signed(fmt, [created(), training_mining(spelling, "notAllowed", key)], creds), fmt)
    assert got.reason == TRAINING_OPT_OUT
    assert got.error_class == "ProvenanceOptOut"
    assert got.detail == f"{spelling}.training-mining: {spelling}.{key} notAllowed"


def test_inference_is_not_training(creds: TestCredentials) -> None:
    got = verdict(signed("JPEG", [created(), training_mining("c2pa", "notAllowed", "ai_inference")],
                         creds), "JPEG")
    assert got.reason is None and got.findings == ()
    assert "c2pa.training-mining: c2pa.ai_inference notAllowed (not training)" in got.notes


@pytest.mark.parametrize("spelling", ["c2pa", "cawg"])
def test_allowed_is_a_note_never_a_grant(spelling: str, creds: TestCredentials) -> None:
    assertion = training_mining(spelling, "allowed", "ai_training", "data_mining")
    got = verdict(signed("PNG", [created(), assertion], creds), "PNG")
    assert got.reason is None
    assert f"{spelling}.training-mining: {spelling}.ai_training allowed (the ledger still decides)" \
        in got.notes
    assert "C2PA: 1 manifest(s), Valid" in got.notes


def test_constrained_is_a_note_with_its_constraint(creds: TestCredentials) -> None:
    assertion = {"label": "cawg.training-mining", "data": {"entries": {
        "cawg.ai_training": {"use": "constrained", "constraint_info": "ask the archive"}}}}
    got = verdict(signed("JPEG", [created(), assertion], creds), "JPEG")
    assert got.reason is None
    assert "cawg.training-mining: cawg.ai_training constrained (ask the archive)" in got.notes


def test_a_not_allowed_beside_an_allowed_still_opts_out(creds: TestCredentials) -> None:
    both = [created(), training_mining("cawg", "allowed", "ai_training"),
            training_mining("c2pa", "notAllowed", "data_mining")]
    assert verdict(signed("JPEG", both, creds), "JPEG").reason == TRAINING_OPT_OUT


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_every_manifest_counts_not_only_the_active_one(fmt: str, creds: TestCredentials) -> None:
    parent = signed(fmt, [created(), training_mining("cawg", "notAllowed", "ai_training")], creds)
    child = sign_over(parent, MIMES[fmt], [training_mining("cawg", "allowed", "ai_training")], creds)
    got = verdict(child, fmt)
    assert got.reason == TRAINING_OPT_OUT
    assert got.detail == "cawg.training-mining: cawg.ai_training notAllowed"
    assert "C2PA: 2 manifest(s), Valid" in got.notes


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_failed_manifest_still_opts_out_and_says_it_failed(fmt: str, creds: TestCredentials) -> None:
    tampered = pf.tamper(signed(fmt, [created(), training_mining("cawg", "notAllowed",
                                                                 "ai_generative_training")], creds))
    decode_bytes(tampered)  # still a decodable image: only the hash broke
    got = verdict(tampered, fmt)
    assert got.reason == TRAINING_OPT_OUT
    assert got.detail == ("cawg.training-mining: cawg.ai_generative_training notAllowed "
                          "(manifest failed validation: assertion.dataHash.mismatch)")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_failed_manifest_without_an_opt_out_is_a_note(fmt: str, creds: TestCredentials) -> None:
    got = verdict(pf.tamper(signed(fmt, [created()], creds)), fmt)
    assert got.reason is None
    assert "C2PA manifest failed validation: assertion.dataHash.mismatch" in got.notes
    assert "C2PA: 1 manifest(s), Invalid" in got.notes


@pytest.mark.parametrize("code", ["trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia",
                                  "algorithmicMedia"])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_generated_source_type_in_c2pa_actions_is_synthetic(
    code: str, fmt: str, creds: TestCredentials
) -> None:
    got = verdict(signed(fmt, [created(pf.SOURCE_TYPES + code)], creds), fmt)
    assert got.reason == SYNTHETIC_INPUT and got.error_class == "SyntheticInput"
    assert got.detail == f"c2pa.actions.v2: c2pa.created digitalSourceType {code}"


@pytest.mark.parametrize("code", ["trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia",
                                  "algorithmicMedia"])
@pytest.mark.parametrize("bare", [False, True])
def test_a_generated_source_type_in_xmp_is_synthetic(code: str, bare: bool) -> None:
    value = code if bare else pf.SOURCE_TYPES + code
    got = verdict(pf.jpeg_with_xmp(pf.xmp_packet(source_type=value)), "JPEG")
    assert got.reason == SYNTHETIC_INPUT
    assert got.detail == f"XMP Iptc4xmpExt:DigitalSourceType {code}"


@pytest.mark.parametrize("code", ["digitalCapture", "compositeCapture", "algorithmicallyEnhanced"])
def test_captured_media_is_not_synthetic(code: str, creds: TestCredentials) -> None:
    assert verdict(signed("JPEG", [created(pf.SOURCE_TYPES + code)], creds), "JPEG").reason is None
    assert verdict(pf.png_with_xmp(pf.xmp_packet(source_type=pf.SOURCE_TYPES + code),
                                   compressed=False), "PNG").reason is None


@pytest.mark.parametrize("form", ["attribute", "resource", "text"])
@pytest.mark.parametrize("where", ["jpeg app1", "jpeg extended", "png itxt", "png itxt zip"])
def test_xmp_data_mining_prohibited_is_an_opt_out(form: str, where: str) -> None:
    packet = pf.xmp_packet(data_mining=pf.PROHIBITED, form=form)
    data = {
        "jpeg app1": lambda: pf.jpeg_with_xmp(packet),
        "jpeg extended": lambda: pf.jpeg_with_extended_xmp(
            pf.xmp_packet(data_mining=pf.PROHIBITED, form=form, padding=150_000)),
        "png itxt": lambda: pf.png_with_xmp(packet, compressed=False),
        "png itxt zip": lambda: pf.png_with_xmp(packet, compressed=True),
    }[where]()
    got = verdict(data, "PNG" if where.startswith("png") else "JPEG")
    assert got.reason == TRAINING_OPT_OUT and got.error_class == "ProvenanceOptOut"
    assert got.detail == "XMP plus:DataMining DMI-PROHIBITED-AIMLTRAINING"


@pytest.mark.parametrize("value", ["http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-GENAIMLTRAINING",
                                   "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED",
                                   "dmi-prohibited-seeconstraint"])
def test_every_prohibited_data_mining_value_opts_out(value: str) -> None:
    got = verdict(pf.png_with_xmp(pf.xmp_packet(data_mining=value), compressed=True), "PNG")
    assert got.reason == TRAINING_OPT_OUT


def test_data_mining_allowed_is_a_note() -> None:
    got = verdict(pf.jpeg_with_xmp(pf.xmp_packet(data_mining=pf.ALLOWED)), "JPEG")
    assert got.reason is None
    assert got.notes == ("XMP plus:DataMining DMI-ALLOWED (the ledger still decides)",)


def test_a_packet_hidden_after_the_image_end_is_read() -> None:
    data = pf.jpeg() + pf.xmp_packet(data_mining=pf.PROHIBITED)
    assert verdict(data, "JPEG").reason == TRAINING_OPT_OUT


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_billion_laughs_packet_is_unreadable_not_expanded(fmt: str) -> None:
    bomb = pf.billion_laughs()
    data = pf.jpeg_with_xmp(bomb) if fmt == "JPEG" else pf.png_with_xmp(bomb, compressed=True)
    got = verdict(data, fmt)
    assert got.reason == PROVENANCE_UNREADABLE and got.error_class == "ProvenanceUnreadable"
    assert "DTDForbidden" in got.detail and "lol" not in got.detail


def test_a_truncated_extended_xmp_is_unreadable() -> None:
    data = pf.jpeg_with_extended_xmp(pf.xmp_packet(source_type="digitalCapture", padding=150_000),
                                     drop=0)
    got = verdict(data, "JPEG")
    assert got.reason == PROVENANCE_UNREADABLE
    assert "extended XMP" in got.detail and "bytes present" in got.detail


def test_an_oversize_itxt_is_unreadable() -> None:
    huge = pf.xmp_packet(data_mining=pf.ALLOWED, padding=5 << 20)
    for compressed in (False, True):
        got = verdict(pf.png_with_xmp(huge, compressed=compressed), "PNG")
        assert got.reason == PROVENANCE_UNREADABLE, compressed
        assert "XMP unreadable: " in got.detail


def test_an_itxt_that_does_not_inflate_is_unreadable() -> None:
    body = b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(b"<x:xmpmeta/>")[:-6]
    got = verdict(pf.png_with_chunk(pf.png(), b"iTXt", body), "PNG")
    assert got.reason == PROVENANCE_UNREADABLE and "does not inflate" in got.detail


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_an_unparseable_c2pa_store_is_unreadable(fmt: str) -> None:
    junk = b"\x00\x00\x00\x28jumb\x00\x00\x00\x20jumdc2pa" + b"\x00" * 24
    if fmt == "PNG":
        data = pf.png_with_chunk(pf.png(), b"caBX", junk)
    else:
        body = b"JP\x00\x00\x00\x00\x00\x01" + junk
        data = pf.jpeg()[:2] + b"\xff\xeb" + struct.pack(">H", len(body) + 2) + body + pf.jpeg()[2:]
    got = verdict(data, fmt)
    assert got.reason == PROVENANCE_UNREADABLE
    assert got.detail.startswith("C2PA store unreadable: ")


def test_the_words_jumb_and_c2pa_alone_are_no_store() -> None:
    data = pf.png_with_chunk(pf.png(), b"tEXt", b"Comment\x00jumb c2pa")
    assert verdict(data, "PNG") == ProvenanceVerdict()


def test_a_training_mining_assertion_of_unknown_shape_is_unreadable(creds: TestCredentials) -> None:
    odd = {"label": "c2pa.training-mining", "data": {"entries": ["ai_training"]}}
    got = verdict(signed("JPEG", [created(), odd], creds), "JPEG")
    assert got.reason == PROVENANCE_UNREADABLE
    assert got.detail == "c2pa.training-mining: no readable entries"


def test_the_opt_out_outranks_the_others_which_the_detail_still_names(
    creds: TestCredentials,
) -> None:
    data = signed("JPEG", [created(TRAINED), training_mining("c2pa", "notAllowed")], creds)
    got = verdict(data, "JPEG")
    assert {x.reason for x in got.findings} == {TRAINING_OPT_OUT, SYNTHETIC_INPUT}
    assert got.findings[0].reason == SYNTHETIC_INPUT  # found first, ranked second
    assert got.reason == TRAINING_OPT_OUT
    assert got.detail == ("c2pa.training-mining: c2pa.ai_training notAllowed; also synthetic_input: "
                          "c2pa.actions.v2: c2pa.created digitalSourceType trainedAlgorithmicMedia")
    unreadable_too = data + b"<x:xmpmeta"  # an unterminated packet after the image end
    ranked = verdict(unreadable_too, "JPEG")
    assert ranked.reason == TRAINING_OPT_OUT
    assert "; provenance_unreadable: XMP unreadable: raw bytes: <x:xmpmeta" in ranked.detail


def test_synthetic_outranks_burned_in_which_outranks_unreadable() -> None:
    packet = pf.xmp_packet(source_type="trainedAlgorithmicMedia")
    data = pf.jpeg_with_xmp(packet) + b"<x:xmpmeta"
    assert verdict(data, "JPEG").reason == SYNTHETIC_INPUT
    dicom = pf.dicom_burned_in("YES") + b"<x:xmpmeta"
    got = verdict(dicom, "DICOM", dicom_tags={BURNED_IN_TAG: "YES"})
    assert got.reason == BURNED_IN_ANNOTATION
    assert "; also provenance_unreadable: XMP unreadable" in got.detail


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")  # pydicom on writing "yes"
@pytest.mark.parametrize("value", ["YES", "yes", " Yes "])
def test_burned_in_annotation_yes_is_quarantined(value: str) -> None:
    data = pf.dicom_burned_in(value)
    tags = decode_bytes(data, tags=(BURNED_IN_TAG,)).tags  # what ingest asks the decoder for
    got = verdict(data, "DICOM", dicom_tags=tags)
    assert got.reason == BURNED_IN_ANNOTATION and got.error_class == "BurnedInAnnotation"
    assert got.detail == "DICOM BurnedInAnnotation (0028,0301) is YES: text in the pixels"


@pytest.mark.parametrize("value", ["NO", None])
def test_burned_in_annotation_no_or_absent_is_nothing(value: str | None) -> None:
    data = pf.dicom_burned_in(value)
    tags = decode_bytes(data, tags=(BURNED_IN_TAG,)).tags
    assert verdict(data, "DICOM", dicom_tags=tags) == ProvenanceVerdict()


def test_burned_in_annotation_accepted_by_config_leaves_a_note() -> None:
    got = verdict(pf.dicom_burned_in("YES"), "DICOM", dicom_tags={BURNED_IN_TAG: "YES"},
                  config=ProvenanceConfig(burned_in_annotation="accept"))
    assert got.reason is None
    assert got.notes == ("DICOM BurnedInAnnotation YES accepted (burned_in_annotation = accept)",)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "JPEG+EXIF", "PNG+TEXT"])
def test_a_plain_file_declares_nothing(fmt: str) -> None:
    data = {"PNG": lambda: f.encode(f.pattern(), "PNG"),
            "JPEG": lambda: f.encode(f.pattern(), "JPEG"),
            "JPEG+EXIF": lambda: f.encode(f.pattern(), "JPEG", exif=f.gps_exif()),
            "PNG+TEXT": lambda: f.png_with_text(f.pattern())}[fmt]()
    assert verdict(data, fmt.split("+")[0]) == ProvenanceVerdict()


def test_source_type_codes() -> None:
    assert source_type_code(TRAINED) == "trainedAlgorithmicMedia"
    assert source_type_code("trainedAlgorithmicMedia") == "trainedAlgorithmicMedia"
    assert source_type_code("http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia/") \
        == "algorithmicMedia"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_remote_manifest_is_not_fetched_and_so_not_trusted(fmt: str, creds: TestCredentials) -> None:
    """The SDK writes the address of a manifest kept elsewhere into the file's XMP
    (dcterms:provenance); ingest never fetches, so it cannot see an opt-out there."""
    import io
    import json

    import c2pa

    mime = {"JPEG": "image/jpeg", "PNG": "image/png"}[fmt]
    manifest = {"claim_generator_info": [{"name": "t"}], "assertions": [created()]}
    out = io.BytesIO()
    with creds.signer() as signer, c2pa.Builder(json.dumps(manifest)) as builder:
        builder.set_no_embed()
        builder.set_remote_url("https://example.org/manifests/abc.c2pa")
        builder.sign(signer, mime, io.BytesIO(plain(fmt)), out)
    found = verdict(out.getvalue(), fmt)
    assert found.reason == PROVENANCE_UNREADABLE
    assert "remote C2PA manifest (https://example.org/manifests/abc.c2pa)" in found.detail
