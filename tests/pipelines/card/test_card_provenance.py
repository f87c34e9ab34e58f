"""The card's provenance section: what every image carries, who signed it, how to verify.

Fast tests render a card from a `ProvenanceInfo` made with a test certificate and run the
card's own c2pa-python instructions on an image stamped by the product's `Stamper`; the
slow one publishes a real (tiny) build whose build file names a test-made certificate and
reads its images back with c2pa-python, then withdraws some and checks the redraw."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import c2pa
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from PIL import Image
from pydantic import ValidationError

from pipelines.card import (
    CARD_JSON,
    TRUST_ANCHORS_FILE,
    ProvenanceInfo,
    SignerInfo,
    load_card,
    render_data_card,
)
from pipelines.buildfile import load_config
from pipelines.card.provenance import DEVELOPMENT_WARNING, NOT_RECORDED
from pipelines.catalog import ReleaseImage, Withdrawal
from pipelines.catalog.reasons import WithdrawalReason
from pipelines.settings import ProvenanceSettings
from pipelines.defs.runner import run_build
from pipelines.steps.release import WITHDRAWN, releases_root
from pipelines.steps.release_files import refresh_release
from tests.c2pa_certs import TRAINED, TestCredentials, make_credentials
from tests.pipelines.card.conftest import HEAD_HASH, base_card
from tests.pipelines.cli.console import CLI
from tests.pipelines.conftest import PURPOSE, Deployment
from validation.release.provenance import ReleaseProvenance, Stamper
from validation.release.signer import DEV_SIGNER_DIR, SigningCredentials
from validation.release.watermark import MIN_WATERMARK_SIZE

README = Path(__file__).resolve().parents[3] / "README.md"

WATERMARK_NOTE = "No invisible watermark: 16 px images are below the size that carries it."


def leaf_sha256(chain_pem: bytes) -> str:
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()


def info_for(creds: TestCredentials, *, development: bool, pem: str | None = None) -> ProvenanceInfo:
    identity = SigningCredentials(chain_pem=creds.chain_pem, key_pem=creds.key_pem,
                                  trust_pem=creds.ca_pem, development=development).identity()
    return ProvenanceInfo(
        release="v0003", generator="ddpm", ledger_head=HEAD_HASH, training_mining="notAllowed",
        signer=SignerInfo(**identity.model_dump()),
        trust_anchors_pem=pem if pem is not None else creds.ca_pem.decode(),
        watermark=False, watermark_note=WATERMARK_NOTE)


def texts(folder: Path) -> tuple[str, str]:
    return ((folder / "data_card.md").read_text(),
            html.unescape((folder / "data_card.html").read_text()))


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def test_the_card_says_what_each_image_carries_and_who_signed_it(tmp_path: Path) -> None:
    creds = make_credentials("hospital")
    card = base_card(provenance=info_for(creds, development=False))
    render_data_card(card, tmp_path, sample_images=[], sample_labels=[])
    md, page = texts(tmp_path)
    for text, end in ((md, "## Privacy"), (page, "<h2>Privacy")):
        part = section(text, "Provenance of every image", end)
        assert TRAINED in part  # the XMP DigitalSourceType
        for label in ("c2pa.actions.v2", "cawg.training-mining", "org.consentgen.release"):
            assert label in part
        assert "notAllowed" in part and f"release v0003, generator ddpm, consent ledger head {HEAD_HASH}" in part
        assert "No thumbnail, no ingredient" in part
        assert leaf_sha256(creds.chain_pem) in part and "CN=hospital signer" in part
        assert "CN=hospital CA" in part and WATERMARK_NOTE in part
        assert f"c2patool images/<label>/<image>.png trust --trust_anchors {TRUST_ANCHORS_FILE}" in part
        assert "c2pa.Reader(" in part and "verify_trust" in part and "consentgen verify-image" in part
        assert "UNTRUSTED" not in part and "NOBODY" not in part
    assert DEVELOPMENT_WARNING not in md and 'class="untrusted"' not in page
    # the anchors ship with the release, public certificate only
    assert (tmp_path / TRUST_ANCHORS_FILE).read_bytes() == creds.ca_pem
    assert b"PRIVATE" not in (tmp_path / TRUST_ANCHORS_FILE).read_bytes()
    assert load_card(tmp_path) == card  # card.json keeps the section for a redraw
    assert json.loads((tmp_path / CARD_JSON).read_text())["provenance"]["signer"]["sha256"] == \
        leaf_sha256(creds.chain_pem)


def test_the_card_says_the_signatures_verify_until_the_certificate_expires(tmp_path: Path) -> None:
    """Releases carry no trusted timestamp, so a reader checks the certificate against
    today: the card says until when the signatures verify, and why not after."""
    creds = make_credentials("hospital")
    info = info_for(creds, development=False)
    render_data_card(base_card(provenance=info), tmp_path, sample_images=[], sample_labels=[])
    until = info.signer.not_after.isoformat(timespec="seconds")
    for text in texts(tmp_path):
        part = text[text.index("Provenance of every image"):]
        assert (f"{until}: the images' signatures verify until then, not after: they carry "
                "no trusted timestamp") in part


def test_a_development_signer_is_said_loudly(tmp_path: Path) -> None:
    card = base_card(provenance=info_for(make_credentials("dev"), development=True))
    render_data_card(card, tmp_path, sample_images=[], sample_labels=[])
    md, page = texts(tmp_path)
    for text in (md, page):
        # at the top, before the first section, and again in the provenance section
        assert text.index(DEVELOPMENT_WARNING) < text.index("Dataset and responsibilities")
        assert text.count(DEVELOPMENT_WARNING) == 2
        assert "NOBODY: the local development signer (untrusted, for testing only)" in text
    assert "provenance.sign_cert and provenance.sign_key" in DEVELOPMENT_WARNING


def test_a_card_without_provenance_says_so_and_ships_no_anchors(tmp_path: Path) -> None:
    render_data_card(base_card(), tmp_path, sample_images=[], sample_labels=[])
    md, page = texts(tmp_path)
    assert NOT_RECORDED in md and NOT_RECORDED in page
    assert not (tmp_path / TRUST_ANCHORS_FILE).exists()


@pytest.mark.parametrize("extra", [
    "key", "text",
])
def test_only_certificates_can_ship_as_trust_anchors(extra: str) -> None:
    creds = make_credentials()
    pem = creds.ca_pem.decode() + (creds.key_pem.decode() if extra == "key" else "a note\n")
    with pytest.raises(ValidationError, match="trust_anchors_pem"):
        info_for(creds, development=False, pem=pem)
    with pytest.raises(ValidationError, match="trust_anchors_pem"):
        info_for(creds, development=False, pem="")


def test_the_cards_python_instructions_verify_a_stamped_image(tmp_path: Path) -> None:
    """The card's c2pa-python snippet, run as written in a copy of the release folder,
    says Trusted for an image the product stamped, and prints the three assertions."""
    creds = make_credentials("hospital")
    release = tmp_path / "v0003"
    card = base_card(provenance=info_for(creds, development=False))
    render_data_card(card, release, sample_images=[], sample_labels=[])
    signing = SigningCredentials(chain_pem=creds.chain_pem, key_pem=creds.key_pem,
                                 trust_pem=creds.ca_pem)
    provenance = ReleaseProvenance(release="v0003", generator="ddpm", ledger_head=HEAD_HASH)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8))
    with Stamper(signing, provenance) as stamper:
        data = stamper.stamp(image)
    (release / "images" / "tumour").mkdir(parents=True)
    (release / "images" / "tumour" / "a.png").write_bytes(data)
    md = (release / "data_card.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", md, re.S)
    assert snippet, "no python block on the card"
    code = snippet.group(1).replace("images/<label>/<image>.png", "images/tumour/a.png")
    done = subprocess.run([sys.executable, "-c", code], cwd=release, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    state, report = done.stdout.split("\n", 1)
    assert state == "Trusted"
    manifest = json.loads(report)["manifests"][json.loads(report)["active_manifest"]]
    assert [a["label"] for a in manifest["assertions"]] == [
        "c2pa.actions.v2", "cawg.training-mining", "org.consentgen.release"]
    # and a copy verified against another CA is not trusted
    (release / TRUST_ANCHORS_FILE).write_bytes(make_credentials("other").ca_pem)
    again = subprocess.run([sys.executable, "-c", code], cwd=release, capture_output=True,
                           text=True, timeout=120)
    assert again.stdout.split("\n", 1)[0] == "Valid"


def read_back(path: Path, anchors: bytes) -> tuple[str, dict]:
    """What c2pa-python says of a published image, trusting `anchors` only."""
    settings = c2pa.Settings.from_dict({"trust": {"trust_anchors": anchors.decode()},
                                        "verify": {"verify_trust": True}})
    with c2pa.Context(settings=settings) as context, c2pa.Reader(str(path), context=context) as r:
        report = json.loads(r.json())
        return r.get_validation_state(), report["manifests"][report["active_manifest"]]


def withdraw(dep: Deployment, images: list[ReleaseImage]) -> None:
    """What the reconcile does to v0001 before it refreshes it."""
    folder = releases_root(dep.home) / "v0001"
    for image in images:
        (folder / image.file_name).unlink()
    with open(folder / WITHDRAWN, "a", encoding="utf-8") as fh:
        fh.writelines(f"{i.image_id}\n" for i in images)
    dep.catalog.add([Withdrawal(version="v0001", image_id=i.image_id, subject_id=None,
                                event_seq=None, revoked_recorded_at=None,
                                withdrawn_at=datetime(2026, 1, 5, tzinfo=UTC), latency_s=None,
                                reason=WithdrawalReason.IMAGE.value) for i in images])


@pytest.mark.slow
def test_a_build_signed_with_the_build_files_certificate(deployment: Deployment,
                                                          tmp_path: Path) -> None:
    """The issue's check: a published image read back with c2pa-python shows the three
    assertions exactly and a signature chain that verifies to the test CA; the card says
    who signed, ships the anchor, and keeps saying so after a withdrawal's redraw."""
    dep = deployment
    creds = make_credentials("hospital")
    pki = dep.home / "pki"
    pki.mkdir()
    for name, data in (("chain.pem", creds.chain_pem), ("signer.key", creds.key_pem),
                       ("ca.pem", creds.ca_pem)):
        (pki / name).write_bytes(data)
    (dep.home / "consentgen.toml").write_text(
        'profile = "test"\n[provenance]\nsign_cert = "pki/chain.pem"\n'
        'sign_key = "pki/signer.key"\ntrust_anchors = "pki/ca.pem"\n')
    settings = load_config(None, home=dep.home).provenance
    assert settings.sign_cert == pki / "chain.pem"  # relative to the build file
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE)
    report = run_build(dep.home, dep.config.model_copy(update={"provenance": settings}),
                       instance=dep.instance)
    assert report.success and report.version == "v0001", report.failure
    folder = releases_root(dep.home) / "v0001"
    assert not (dep.home / DEV_SIGNER_DIR).exists()  # the build file's signer, no other

    card = load_card(folder)
    assert card.provenance is not None
    expected = ReleaseProvenance(release="v0001", generator="ddpm", ledger_head=card.consent.hash,
                                 training_mining="notAllowed").assertions()
    assert card.consent.hash == dep.ledger.events()[-1].hash
    images = sorted(folder.glob("images/*/*.png"))
    assert images
    for path in images:
        state, manifest = read_back(path, creds.ca_pem)
        assert state == "Trusted", path
        assert [{"label": a["label"], "data": a["data"]} for a in manifest["assertions"]] == expected
        assert not manifest.get("ingredients") and "thumbnail" not in manifest
        assert manifest["signature_info"]["common_name"] == "hospital signer"
    assert read_back(images[0], make_credentials("other").ca_pem)[0] == "Valid"  # not Trusted

    # the card: who signed (the chain's leaf), not a development signer, the watermark
    info = card.provenance
    assert info.signer.sha256 == leaf_sha256(creds.chain_pem) and info.signer.development is False
    assert info.release == "v0001" and info.ledger_head == card.consent.hash
    assert not info.watermark and info.watermark_note.startswith("No invisible watermark: 16 px")
    assert (folder / TRUST_ANCHORS_FILE).read_bytes() == creds.ca_pem
    md, page = texts(folder)
    for text in (md, page):
        assert leaf_sha256(creds.chain_pem) in text and info.watermark_note in text
        assert "CN=hospital signer" in text and DEVELOPMENT_WARNING not in text
    assert not any(s in md or s in page for s in dep.subjects)

    # the card's consentgen instruction, on a downloaded copy of the release
    copy = tmp_path / "downloaded"
    shutil.copytree(folder, copy)
    relative = images[0].relative_to(folder).as_posix()
    done = subprocess.run([CLI, "verify-image", relative, "--trust", TRUST_ANCHORS_FILE],
                          cwd=copy, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CONSENTGEN_HOME": str(tmp_path / "no-home")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "C2PA       Trusted" in done.stdout and f"{TRUST_ANCHORS_FILE} (--trust)" in done.stdout

    # a withdrawal's redraw keeps the section and the anchors
    rows = dep.catalog.select(ReleaseImage, "WHERE version = 'v0001' ORDER BY image_id")
    withdraw(dep, rows[:2])
    refresh_release(dep.catalog, "v0001", dep.config)
    redrawn = load_card(folder)
    assert redrawn.withdrawals and redrawn.provenance == card.provenance
    assert (folder / TRUST_ANCHORS_FILE).read_bytes() == creds.ca_pem
    md, page = texts(folder)
    for text in (md, page):
        assert "Withdrawn: " in text and leaf_sha256(creds.chain_pem) in text
        assert "Provenance of every image" in text


def readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Provenance of published images")
    return text[start:text.index("\n## ", start + 1)]


def test_the_readmes_provenance_table_and_watermark_size_are_the_codes() -> None:
    part = readme_section()
    block = re.search(r"```toml\n(.*?)```", part, re.S)
    assert block, "no toml block in README 'Provenance of published images'"
    table = tomllib.loads(block.group(1))["provenance"]
    assert set(table) == set(ProvenanceSettings.model_fields)  # every key, no other
    ProvenanceSettings.model_validate(table)
    sizes = {int(n) for n in re.findall(r"(\d+) px", part)}
    assert sizes == {MIN_WATERMARK_SIZE}


def test_the_readmes_python_example_verifies_a_stamped_image(tmp_path: Path) -> None:
    creds = make_credentials("hospital")
    release = tmp_path / "v0001"
    render_data_card(base_card(provenance=info_for(creds, development=False)), release,
                     sample_images=[], sample_labels=[])
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8))
    signing = SigningCredentials(chain_pem=creds.chain_pem, key_pem=creds.key_pem,
                                 trust_pem=creds.ca_pem)
    with Stamper(signing, ReleaseProvenance(release="v0001", generator="ddpm",
                                            ledger_head=HEAD_HASH)) as stamper:
        data = stamper.stamp(image)
    (release / "images" / "tumour").mkdir(parents=True)
    (release / "images" / "tumour" / "IMAGE.png").write_bytes(data)
    block = re.search(r"```python\n(.*?)```", readme_section(), re.S)
    assert block, "no python block in README 'Provenance of published images'"
    done = subprocess.run([sys.executable, "-c", block.group(1)], cwd=release,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    state, report = done.stdout.split("\n", 1)
    assert state == "Trusted" and "org.consentgen.release" in report
