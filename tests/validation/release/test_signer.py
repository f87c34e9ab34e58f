"""The home's development signer: made once, private key 0600, a chain c2pa-rs accepts,
named untrusted, and the same signer for processes that race to make it."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
from cryptography import x509
from PIL import Image

from validation.release.provenance import ReleaseProvenance, Stamper
from validation.release.signer import (
    CA_FILE,
    CHAIN_FILE,
    DEV_ORGANISATION,
    DEV_SIGNER_DIR,
    KEY_FILE,
    ensure_dev_signer,
)
from validation.sources.c2pa_store import read_c2pa

ROOT = Path(__file__).resolve().parents[3]


def test_made_once_with_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    first, made = ensure_dev_signer(tmp_path)
    again, made_again = ensure_dev_signer(tmp_path)
    assert made and not made_again
    assert first == again
    folder = tmp_path / DEV_SIGNER_DIR
    assert sorted(p.name for p in folder.iterdir()) == sorted([CA_FILE, CHAIN_FILE, KEY_FILE])
    assert stat.S_IMODE((folder / KEY_FILE).stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in (folder / CHAIN_FILE).read_bytes() + (folder / CA_FILE).read_bytes()
    assert not list(tmp_path.glob("keys/.tmp-*"))


def test_it_is_named_untrusted_and_its_ca_cannot_issue_more(tmp_path: Path) -> None:
    credentials, _ = ensure_dev_signer(tmp_path)
    identity = credentials.identity()
    assert identity.development and DEV_ORGANISATION in identity.subject
    assert "untrusted" in identity.issuer
    leaf, ca = x509.load_pem_x509_certificates(credentials.chain_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # only the leaf's key is kept: no key in the home belongs to the CA
    assert len(list((tmp_path / DEV_SIGNER_DIR).glob("*.key"))) == 1


def test_its_signatures_verify_against_its_ca_only(tmp_path: Path) -> None:
    credentials, _ = ensure_dev_signer(tmp_path / "a")
    stranger, _ = ensure_dev_signer(tmp_path / "b")
    image = Image.fromarray(np.zeros((16, 16), np.uint8))
    provenance = ReleaseProvenance(release="v0001", generator="ddpm", ledger_head="0" * 64)
    with Stamper(credentials, provenance) as stamper:
        data = stamper.stamp(image)
    own = read_c2pa(data, "image/png", trust_anchors=credentials.trust_pem.decode())
    other = read_c2pa(data, "image/png", trust_anchors=stranger.trust_pem.decode())
    assert own is not None and own.state == "Trusted"
    assert other is not None and other.state == "Valid" and "signingCredential.untrusted" in other.codes


def test_processes_racing_to_make_it_end_with_one_signer(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from validation.release.signer import "
            "ensure_dev_signer; c, _ = ensure_dev_signer(Path(sys.argv[1])); "
            "print(c.identity().sha256)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    prints = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert prints == {ensure_dev_signer(tmp_path)[0].identity().sha256}
    assert not list(tmp_path.glob("keys/.tmp-*"))
