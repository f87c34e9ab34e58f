"""What a file declares about itself: C2PA / CAWG training-mining, XMP Data Mining,
digitalSourceType, DICOM BurnedInAnnotation, and what cannot be read (fail closed).

Every input is a real file made here: Pillow images, XMP packets written into them,
manifests signed by c2pa-python with a certificate made in the test, DICOM by pydicom.
"""

from __future__ import annotations

import random
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
from validation.sources.declarations import MAX_MARKERS, WINDOW, markers
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

MIMES, plain = pf.MIMES, pf.plain


@pytest.fixture(scope="module")
def creds() -> TestCredentials:
    return make_credentials("provenance")


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


# Issue 14 review, finding 1: hostile XMP finishes (bounded work) and is unreadable.


@pytest.mark.parametrize("shape", ["nested", "many segments", "many inflated"])
def test_hostile_xmp_is_unreadable(shape: str) -> None:
    plain_png, plain_jpeg = pf.png(), pf.jpeg()
    if shape == "nested":  # 20,000 nested plus:DataMining: 14 s before, in a 700 KB file
        data, fmt = pf.png_with_xmp(pf.nested_data_mining(20_000), compressed=True), "PNG"
    elif shape == "many segments":  # 20,000 tiny APP1 packets: 10 s before
        small = pf.app1(b"http://ns.adobe.com/xap/1.0/\x00" + b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
        data, fmt = plain_jpeg[:2] + small * 20_000 + plain_jpeg[2:], "JPEG"
    else:  # 100 compressed 4 MB packets: 453 MB of memory before
        chunk = f.png_chunk(b"iTXt", pf.text_chunk(b"XML:com.adobe.xmp",
                                                   pf.xmp_packet(padding=4_000_000), compressed=True))
        at = plain_png.rindex(b"IEND") - 4
        data, fmt = plain_png[:at] + chunk * 100 + plain_png[at:], "PNG"
    got = verdict(data, fmt)
    assert got.reason == PROVENANCE_UNREADABLE
    assert got.detail.startswith("XMP unreadable: ")
    assert {"nested": "nested deeper than", "many segments": "more than 16 XMP packets",
            "many inflated": "one file may inflate"}[shape] in got.detail


# Finding 2: IPTC metadata inside a C2PA manifest, judged as XMP is.

CONTEXT = {"@context": {"plus": pf.PLUS, "Iptc4xmpExt": pf.IPTC_EXT, "xyz": pf.PLUS}}
METADATA_LABELS = {  # label signed -> label the SDK reports (it drops .vN and __N)
    "stds.iptc": "stds.iptc", "stds.iptc.v2": "stds.iptc",
    "stds.iptc.photo-metadata": "stds.iptc.photo-metadata", "cawg.metadata": "cawg.metadata",
    "cawg.metadata.v2": "cawg.metadata", "c2pa.metadata": "c2pa.metadata",
    "c2pa.metadata__2": "c2pa.metadata",
}
"""Every label the SDK's Builder accepts; it refuses ``stds.iptc__1`` and
``stds.iptc.v3__2`` (AssertionNotFound), so numbered labels are tested as the SDK makes
them: a second assertion of one label."""


@pytest.mark.parametrize("label", sorted(METADATA_LABELS))
@pytest.mark.parametrize("key", ["plus:DataMining", "xyz:DataMining", pf.PLUS + "DataMining"])
@pytest.mark.parametrize("form", ["string", "@id", "list of @id", "list"])
def test_data_mining_prohibited_in_a_metadata_assertion_is_an_opt_out(
    label: str, key: str, form: str, creds: TestCredentials
) -> None:
    value = {"string": pf.PROHIBITED, "@id": {"@id": pf.PROHIBITED},
             "list of @id": [{"@id": pf.PROHIBITED}], "list": [pf.ALLOWED, pf.PROHIBITED]}[form]
    assertion = {"label": label, "data": {**CONTEXT, key: value}}
    got = verdict(signed("PNG", [created(), assertion], creds), "PNG")
    assert got.reason == TRAINING_OPT_OUT
    assert got.detail == f"{METADATA_LABELS[label]}: {key} DMI-PROHIBITED-AIMLTRAINING"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("key", ["Iptc4xmpExt:DigitalSourceType",
                                 pf.IPTC_EXT + "DigitalSourceType"])
def test_a_generated_source_type_in_a_metadata_assertion_is_synthetic(
    fmt: str, key: str, creds: TestCredentials
) -> None:
    assertion = {"label": "stds.iptc.photo-metadata", "data": {**CONTEXT, key: {"@id": TRAINED}}}
    got = verdict(signed(fmt, [created(), assertion], creds), fmt)
    assert got.reason == SYNTHETIC_INPUT
    assert got.detail == f"stds.iptc.photo-metadata: {key} trainedAlgorithmicMedia"


def test_a_second_metadata_assertion_of_one_label_counts(creds: TestCredentials) -> None:
    first = {"label": "cawg.metadata", "data": {**CONTEXT, "plus:DataMining": pf.ALLOWED}}
    second = {"label": "cawg.metadata", "data": {**CONTEXT, "plus:DataMining": pf.PROHIBITED}}
    data = signed("JPEG", [created(), first, second], creds)
    assert b"cawg.metadata__1" in data  # what the SDK names the second
    got = verdict(data, "JPEG")
    assert got.reason == TRAINING_OPT_OUT
    assert "cawg.metadata: plus:DataMining DMI-ALLOWED (the ledger still decides)" in got.notes


def test_data_mining_allowed_in_a_metadata_assertion_is_a_note(creds: TestCredentials) -> None:
    assertion = {"label": "stds.iptc", "data": {**CONTEXT, "plus:DataMining": {"@id": pf.ALLOWED},
                                                "Iptc4xmpExt:DigitalSourceType": cc_capture()}}
    got = verdict(signed("PNG", [created(), assertion], creds), "PNG")
    assert got.findings == ()
    assert "stds.iptc: plus:DataMining DMI-ALLOWED (the ledger still decides)" in got.notes


def cc_capture() -> str:
    return pf.SOURCE_TYPES + "digitalCapture"


# Finding 3: a C2PA store in the bytes that the SDK did not judge, or judged in part.


def test_c2pa_bytes_the_sdk_does_not_read_as_a_store_are_unreadable(creds: TestCredentials) -> None:
    png_optout = signed("PNG", [created(), training_mining("cawg", "notAllowed")], creds)
    rest, store = pf.png_without_store(png_optout), pf.png_store_chunk(png_optout)
    renamed = f.png_chunk(b"cabx", store[8:-4])
    jpeg_optout = signed("JPEG", [created(), training_mining("c2pa", "notAllowed")], creds)
    head, scan = pf.jpeg_without_store(jpeg_optout)
    cases = {
        "caBX after IEND": (pf.png_after_end(pf.png_from_chunks(rest), store), "PNG"),
        "chunk named cabx": (pf.png_from_chunks([rest[0], (b"cabx", renamed), *rest[1:]]), "PNG"),
        "APP11 after EOI": (head + scan + pf.jpeg_store(jpeg_optout), "JPEG"),
    }
    for name, (data, fmt) in cases.items():
        decode_bytes(data)  # each still a decodable image
        got = verdict(data, fmt)
        assert got.reason == PROVENANCE_UNREADABLE, name
        assert got.detail.startswith("C2PA-like bytes the SDK did not read as a store"), name


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_store_whose_own_box_type_and_words_are_damaged_is_still_seen(
    fmt: str, creds: TestCredentials
) -> None:
    """Found by the fuzz below: three bytes hit the store's box type (jumdc2pa) and both
    copies of "training-mining"; every other JUMBF box still says what it is."""
    data = signed(fmt, [created(), training_mining("cawg", "notAllowed")], creds)
    damaged = data.replace(b"jumdc2pa", b"jumdc2ca").replace(b"training-mining",
                                                             b"training-\x82ining")
    damaged = pf.fix_png_crcs(damaged) if fmt == "PNG" else damaged
    assert markers(damaged) == [] and b"jumdc2pa" not in damaged
    got = verdict(damaged, fmt)
    assert got.reason == PROVENANCE_UNREADABLE
    assert got.detail.startswith(("C2PA store unreadable: ", "C2PA-like bytes"))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("order", ["benign first", "opt-out first"])
def test_two_stores_in_one_file_are_unreadable(fmt: str, order: str, creds: TestCredentials) -> None:
    """The SDK reads the first of two JPEG stores (an opt-out in the second was lost) and
    refuses two PNG caBX chunks."""
    optout = signed(fmt, [created(), training_mining("c2pa", "notAllowed")], creds)
    benign = signed(fmt, [created()], creds, seed=1)
    if fmt == "JPEG":
        stores = [pf.jpeg_store(benign), pf.jpeg_store(optout)]
        head, scan = pf.jpeg_without_store(optout)
        data = head[:2] + b"".join(stores[:: 1 if order == "benign first" else -1]) + head[2:] + scan
    else:
        stores = [(b"caBX", pf.png_store_chunk(benign)), (b"caBX", pf.png_store_chunk(optout))]
        rest = pf.png_without_store(optout)
        data = pf.png_from_chunks([rest[0], *stores[:: 1 if order == "benign first" else -1],
                                   *rest[1:]])
    got = verdict(data, fmt)
    assert got.reason in (PROVENANCE_UNREADABLE, TRAINING_OPT_OUT)
    assert any(x.detail == "2 C2PA manifest stores in one file; the SDK reads one"
               for x in got.findings)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_store_whose_assertion_does_not_parse_is_unreadable(fmt: str, creds: TestCredentials) -> None:
    """The SDK says "0 manifest(s), Invalid" with assertion.cbor.invalid: before, a note."""
    data = pf.damage_assertion(signed(fmt, [created(), training_mining("cawg", "notAllowed")], creds),
                               b"cawg.training-mining")
    got = verdict(data, fmt)
    assert got.reason == PROVENANCE_UNREADABLE
    assert got.detail.startswith("C2PA store with no manifest the SDK could read (")
    assert "assertion.cbor.invalid" in got.detail


def test_a_store_read_in_part_is_unreadable_and_its_opt_out_still_counts(
    creds: TestCredentials,
) -> None:
    data = signed("PNG", [created(), training_mining("cawg", "notAllowed"),
                          {"label": "com.example.extra", "data": {"n": 1}}], creds)
    at = data.index(b"cbor", data.index(b"com.example.extra\x00")) + 4
    damaged = pf.fix_png_crcs(data[:at] + b"\x81" + data[at + 1 :])  # a map made an array
    got = verdict(damaged, "PNG")
    assert {x.reason for x in got.findings} == {TRAINING_OPT_OUT, PROVENANCE_UNREADABLE}
    assert "C2PA store partly unreadable: assertion.cbor.invalid" in got.detail


def test_a_use_we_do_not_know_is_unreadable(creds: TestCredentials) -> None:
    got = verdict(signed("JPEG", [created(), training_mining("cawg", "notA?lowed")], creds), "JPEG")
    assert got.reason == PROVENANCE_UNREADABLE
    assert got.detail == ("cawg.training-mining: cawg.ai_training notA?lowed: not a use we know "
                          "(allowed, notAllowed, constrained)")


@pytest.mark.parametrize("key", ["ai_trainiBg", "ai_fine_tuning", "data_minin"])
def test_not_allowed_under_any_key_but_inference_is_an_opt_out(key: str, creds: TestCredentials) -> None:
    got = verdict(signed("PNG", [created(), training_mining("cawg", "notAllowed", key)], creds), "PNG")
    assert got.reason == TRAINING_OPT_OUT
    assert got.detail == f"cawg.training-mining: cawg.{key} notAllowed"


@pytest.mark.parametrize("label", ["com.example.training-mining", "cawg.training-mining.v2"])
def test_any_label_naming_training_mining_is_judged(label: str, creds: TestCredentials) -> None:
    assertion = {"label": label, "data": {"entries": {"cawg.ai_training": {"use": "notAllowed"}}}}
    got = verdict(signed("JPEG", [created(), assertion], creds), "JPEG")
    assert got.reason == TRAINING_OPT_OUT


# The backstop: declaration words in bytes nothing judged.


@pytest.mark.parametrize("word", ["DMI-PROHIBITED-AIMLTRAINING", "dmi-prohibited",
                                  "cawg.training-mining", "trainedAlgorithmicMedia",
                                  "COMPOSITEWITHTRAINEDALGORITHMICMEDIA", "algorithmicMedia"])
@pytest.mark.parametrize("where", ["tEXt", "zTXt", "after IEND", "JPEG COM"])
def test_a_declaration_word_outside_anything_read_is_unreadable(word: str, where: str) -> None:
    text = f"note: {word} (see the archive)".encode()
    if where == "JPEG COM":
        data, fmt = pf.jpeg(comment=text), "JPEG"
    elif where == "after IEND":
        data, fmt = pf.png() + text, "PNG"
    else:
        data = pf.png_with_chunk(pf.png(), where.encode(),
                                 pf.text_chunk(b"Comment", text, ctype=where.encode()))
        fmt = "PNG"
    got = verdict(data, fmt)
    assert got.reason == PROVENANCE_UNREADABLE
    kind = word.lower().removeprefix("cawg.").replace("dmi-prohibited-aimltraining", "dmi-prohibited")
    if where == "zTXt":  # compressed: seen only once inflated
        assert got.detail == ("declaration word not read as a value: PNG zTXt 'Comment' "
                              f"(inflated): {kind} outside any XMP packet")
    else:
        assert got.detail.startswith(f"{kind!r} at byte ")
        assert got.detail.endswith(", outside anything read (a declaration we cannot see)")


@pytest.mark.parametrize("shape", ["bare rdf:RDF in tEXt", "xx:xmpmeta after IEND",
                                   "UTF-16 in an unknown chunk", "UTF-16BE in an unknown chunk"])
def test_xmp_that_no_reader_parses_is_caught_by_the_backstop(shape: str) -> None:
    packet = pf.xmp_packet(data_mining=pf.PROHIBITED)
    if shape == "bare rdf:RDF in tEXt":
        bare = packet.replace(b'<x:xmpmeta xmlns:x="adobe:ns:meta/">', b"").replace(
            b"</x:xmpmeta>", b"")
        data = pf.png_with_chunk(pf.png(), b"tEXt", pf.text_chunk(b"Comment", bare, ctype=b"tEXt"))
    elif shape == "xx:xmpmeta after IEND":
        data = pf.png() + packet.replace(b"x:xmpmeta xmlns:x=", b"xx:xmpmeta xmlns:xx=").replace(
            b"</x:xmpmeta>", b"</xx:xmpmeta>")
    else:
        encoding = "utf-16-be" if "BE" in shape else "utf-16"
        data = pf.png_with_chunk(pf.png(), b"prIv", packet.decode().encode(encoding))
    got = verdict(data, "PNG")
    assert got.reason == PROVENANCE_UNREADABLE
    assert got.detail.startswith("'dmi-prohibited' at byte ")
    assert ("(UTF-16)" in got.detail) == ("UTF-16" in shape)


@pytest.mark.parametrize("where", ["raw profile", "compressed under XMP", "compressed after IEND",
                                   "UTF-16 iTXt"])
def test_xmp_in_places_not_read_before_opts_out(where: str) -> None:
    packet = pf.xmp_packet(data_mining=pf.PROHIBITED)
    key = b"XML:com.adobe.xmp"
    data = {
        "raw profile": lambda: pf.png_with_chunk(pf.png(), b"zTXt", pf.text_chunk(
            b"Raw profile type xmp", pf.raw_profile(packet), ctype=b"zTXt")),
        "compressed under XMP": lambda: pf.png_with_chunk(
            pf.png(), b"iTXt", pf.text_chunk(b"XMP", packet, compressed=True)),
        "compressed after IEND": lambda: pf.png_after_end(
            pf.png(), f.png_chunk(b"iTXt", pf.text_chunk(key, packet, compressed=True))),
        "UTF-16 iTXt": lambda: pf.png_with_chunk(
            pf.png(), b"iTXt", pf.text_chunk(key, packet.decode().encode("utf-16"))),
    }[where]()
    got = verdict(data, "PNG")
    assert got.reason == TRAINING_OPT_OUT
    assert got.detail == "XMP plus:DataMining DMI-PROHIBITED-AIMLTRAINING"


@pytest.mark.parametrize("label", ["com.example.rights", "c2pa.actions"])
def test_a_word_in_the_store_no_judged_assertion_accounts_for_is_unreadable(
    label: str, creds: TestCredentials
) -> None:
    if label == "c2pa.actions":  # a code we would not read as one (a query after it)
        assertion = created(TRAINED + "?v=1")
    else:
        assertion = {"label": label, "data": {"terms": pf.PROHIBITED}}
    got = verdict(signed("PNG", [created(), assertion] if label != "c2pa.actions" else [assertion],
                         creds), "PNG")
    assert got.reason == PROVENANCE_UNREADABLE
    kind = "trainedalgorithmicmedia" if label == "c2pa.actions" else "dmi-prohibited"
    assert (f"C2PA store bytes hold {kind!r}, which no assertion we judged accounts for"
            in got.detail)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("case", ["plain", "training-mining allowed", "inference notAllowed",
                                  "ingredient allowed", "DMI-ALLOWED", "digitalCapture",
                                  "algorithmicallyEnhanced text"])
def test_ordinary_files_stay_accepted(fmt: str, case: str, creds: TestCredentials) -> None:
    """The backstop sees "training-mining" in every manifest that has the assertion; a
    judged store accounts for it."""
    mime = MIMES[fmt]
    capture = pf.xmp_packet(data_mining=pf.ALLOWED, source_type=cc_capture())
    make = {
        "plain": lambda: plain(fmt),
        "training-mining allowed": lambda: signed(fmt, [created(), training_mining(
            "cawg", "allowed", "ai_training", "ai_generative_training", "data_mining")], creds),
        "inference notAllowed": lambda: signed(fmt, [created(), training_mining(
            "c2pa", "notAllowed", "ai_inference")], creds),
        "ingredient allowed": lambda: sign_over(signed(fmt, [created(), training_mining(
            "cawg", "allowed")], creds), mime, [training_mining("c2pa", "allowed")], creds),
        "DMI-ALLOWED": lambda: (pf.jpeg_with_xmp(capture) if fmt == "JPEG"
                                else pf.png_with_xmp(capture, compressed=True)),
        "digitalCapture": lambda: signed(fmt, [created(cc_capture())], creds),
        "algorithmicallyEnhanced text": lambda: (
            pf.jpeg(comment=b"algorithmicallyEnhanced") if fmt == "JPEG" else pf.png_with_chunk(
                pf.png(), b"tEXt", pf.text_chunk(b"Comment", b"algorithmicallyEnhanced",
                                                 ctype=b"tEXt"))),
    }
    data = make[case]()
    got = verdict(data, fmt)
    assert got.findings == (), got.detail
    if "training-mining" in case or "ingredient" in case or "inference" in case:
        assert b"training-mining" in data


# Finding 5: PROHIBITED is judged on the value as written, not on its display form.


@pytest.mark.parametrize("value", [
    "http://ns.useplus.org/ldf/vocab/DMI-" + "UNSPECIFIED-" * 8 + "PROHIBITED",  # past 80 chars
    "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING/1",  # not the last segment
])
def test_prohibited_is_judged_on_the_raw_value(value: str) -> None:
    got = verdict(pf.jpeg_with_xmp(pf.xmp_packet(data_mining=value)), "JPEG")
    assert got.reason == TRAINING_OPT_OUT and got.error_class == "ProvenanceOptOut"


def test_fuzzed_opt_out_stores_are_never_accepted(creds: TestCredentials) -> None:
    """The reviewer's fuzz (fuzz2): random bytes of a signed opt-out's store changed (a
    PNG's CRC fixed); whatever the SDK makes of it, the file is an opt-out or unreadable."""
    rng = random.Random(14)
    for fmt in ("PNG", "JPEG"):
        base = signed(fmt, [created(), training_mining("cawg", "notAllowed")], creds)
        if fmt == "PNG":
            at = base.index(b"caBX")
            lo, hi = at + 4, at + 4 + struct.unpack(">I", base[at - 4 : at])[0]
        else:
            lo, hi = 2, base.index(b"\xff\xda")
        for _ in range(150):
            data = bytearray(base)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(lo, hi)] = rng.randrange(256)
            fuzzed = pf.fix_png_crcs(bytes(data)) if fmt == "PNG" else bytes(data)
            assert verdict(fuzzed, fmt).reason in (TRAINING_OPT_OUT, PROVENANCE_UNREADABLE)


# The backstop's own bounds.


@pytest.mark.parametrize("word", ["compositeWithTrainedAlgorithmicMedia", "training-mining"])
@pytest.mark.parametrize("encoding", ["ascii", "utf-16-le", "utf-16-be"])
def test_a_word_over_a_window_edge_is_found_once_as_itself(word: str, encoding: str) -> None:
    encoded = word.encode(encoding)
    for cut in range(1, len(encoded), 3):
        blob = b"x" * (WINDOW - cut) + encoded + b"y" * 10
        found = [(m.pos, m.kind) for m in markers(blob)]
        start = WINDOW - cut + (1 if encoding == "utf-16-be" else 0)
        assert found == [(start, word.lower())], cut


def test_a_file_of_nothing_but_declaration_words_is_unreadable_and_not_listed() -> None:
    data = pf.png() + b"DMI-PROHIBITED " * 200_000
    assert len(markers(data)) == MAX_MARKERS + 1
    got = verdict(data, "PNG")
    assert got.reason == PROVENANCE_UNREADABLE
    assert got.detail == f"more than {MAX_MARKERS} declaration words in the file"


def test_a_plain_file_holds_no_declaration_word() -> None:
    for data in (pf.png(), pf.jpeg(), f.png_with_text(f.pattern()), pf.dicom_burned_in(None)):
        assert markers(data) == []
