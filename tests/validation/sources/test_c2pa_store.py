"""The C2PA store of a JPEG or PNG as c2pa-python reads it offline: every manifest, the
state, the failure codes, trust only against anchors a caller passes; never raises."""

from __future__ import annotations

import pytest

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
from validation.sources.c2pa_store import (
    UNTRUSTED,
    has_jumbf,
    read_c2pa,
    store_boxes,
    store_spans,
)

MIMES, plain = pf.MIMES, pf.plain


@pytest.fixture(scope="module")
def creds() -> TestCredentials:
    return make_credentials("store")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_signed_file_reads_back_with_its_assertions(fmt: str, creds: TestCredentials) -> None:
    data = sign_bytes(plain(fmt), MIMES[fmt], [created(TRAINED), training_mining("cawg", "notAllowed")],
                      creds)
    store = read_c2pa(data, MIMES[fmt])
    assert store is not None and store.error is None
    assert (store.state, store.codes, store.failures) == ("Valid", (UNTRUSTED,), ())
    manifest = store.active_manifest
    assert manifest is not None and len(store.manifests) == 1
    assert manifest.assertion("cawg.training-mining").data == {
        "entries": {"cawg.ai_training": {"use": "notAllowed"}}}
    actions = manifest.assertion("c2pa.actions.v2").data["actions"]
    assert actions[0]["digitalSourceType"] == TRAINED
    assert manifest.signer["common_name"] == "store signer"
    assert manifest.claim_generator == ("consentgen-tests",) and not manifest.thumbnail


def test_trust_is_judged_only_against_the_anchors_passed(creds: TestCredentials) -> None:
    data = sign_bytes(pf.png(), "image/png", [created()], creds)
    trusted = read_c2pa(data, "image/png", trust_anchors=creds.ca_pem.decode())
    assert trusted is not None and (trusted.state, trusted.codes) == ("Trusted", ())
    other = read_c2pa(data, "image/png", trust_anchors=make_credentials("other").ca_pem.decode())
    assert other is not None and other.state != "Trusted"


def test_an_ingredient_manifest_is_in_the_store(creds: TestCredentials) -> None:
    parent = sign_bytes(pf.jpeg(), "image/jpeg", [created(), training_mining("c2pa", "notAllowed")],
                        creds)
    store = read_c2pa(sign_over(parent, "image/jpeg", [], creds), "image/jpeg")
    assert store is not None and len(store.manifests) == 2
    active = store.active_manifest
    assert active is not None and active.ingredients == 1
    (inner,) = [m for m in store.manifests if m.label != store.active]
    assert inner.assertion("c2pa.training-mining") is not None


def test_a_tampered_file_is_invalid_and_still_readable(creds: TestCredentials) -> None:
    data = pf.tamper(sign_bytes(pf.jpeg(), "image/jpeg", [created(), training_mining("c2pa", "notAllowed")],
                                creds))
    store = read_c2pa(data, "image/jpeg")
    assert store is not None and store.state == "Invalid"
    assert "assertion.dataHash.mismatch" in store.failures
    assert store.manifests[0].assertion("c2pa.training-mining") is not None


def test_no_store_is_none_and_a_broken_one_is_an_error() -> None:
    assert not has_jumbf(pf.png()) and read_c2pa(pf.png(), "image/png") is None
    words = pf.png_with_chunk(pf.png(), b"tEXt", b"Comment\x00jumb c2pa")
    assert not has_jumbf(words) and read_c2pa(words, "image/png") is None  # no store box
    box = pf.png_with_chunk(pf.png(), b"tEXt", b"Comment\x00jumdc2pa")
    assert has_jumbf(box) and store_boxes(box) == 1
    assert read_c2pa(box, "image/png") is None  # ManifestNotFound: the caller must say so
    any_box = pf.png_with_chunk(pf.png(), b"tEXt", b"Comment\x00jumdjson\x00\x11\x00\x10\x80"
                                b"\x00\x00\xaa\x00\x38\x9b\x71")
    assert has_jumbf(any_box) and store_boxes(any_box) == 0  # some JUMBF box: the SDK is asked
    broken = pf.png_with_chunk(pf.png(), b"caBX", b"\x00\x00\x00\x28jumb\x00\x00\x00\x20jumdc2pa"
                               + b"\x00" * 24)
    store = read_c2pa(broken, "image/png")
    assert store is not None and store.manifests == () and store.state is None
    assert store.error is not None and store.error.startswith("C2pa")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_one_store_box_and_where_the_sdk_reads_it(fmt: str, creds: TestCredentials) -> None:
    parent = sign_bytes(plain(fmt), MIMES[fmt], [created(), training_mining("cawg", "allowed")],
                        creds)
    child = sign_over(parent, MIMES[fmt], [], creds)
    assert store_boxes(parent) == store_boxes(child) == 1  # the ingredient's manifest is inside
    spans = store_spans(child)
    store = pf.jpeg_store(child) if fmt == "JPEG" else pf.png_store_chunk(child)
    assert b"".join(child[lo:hi] for lo, hi in spans) == store
    assert store_spans(plain(fmt)) == [] and store_boxes(plain(fmt)) == 0


def test_a_store_after_iend_is_not_where_the_sdk_reads(creds: TestCredentials) -> None:
    signed = sign_bytes(pf.png(), "image/png", [created()], creds)
    moved = pf.png_after_end(pf.png_from_chunks(pf.png_without_store(signed)),
                             pf.png_store_chunk(signed))
    assert store_boxes(moved) == 1 and store_spans(moved) == []
    assert read_c2pa(moved, "image/png") is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_an_assertion_the_sdk_cannot_parse_is_damage(fmt: str, creds: TestCredentials) -> None:
    signed = sign_bytes(plain(fmt), MIMES[fmt], [created(), training_mining("cawg", "notAllowed")],
                        creds)
    store = read_c2pa(pf.damage_assertion(signed, b"cawg.training-mining"), MIMES[fmt])
    assert store is not None and store.error is None and store.state == "Invalid"
    assert store.manifests == ()  # the SDK drops the manifest and says only "Invalid"
    assert {"assertion.cbor.invalid", "assertion.required.missing"} <= set(store.damaged)
    tampered = read_c2pa(pf.tamper(signed), MIMES[fmt])
    assert tampered is not None and tampered.failures and tampered.damaged == ()
