"""The home's development signer: made once, private key 0600, a chain c2pa-rs accepts,
named untrusted, and the same signer for processes that race to make it; renewed (the old
one moved aside) before it expires; no key left behind by a failed write; synced before
and after its rename. And `load_credentials`: a certificate outside its validity is
refused in one line, a key others can read is warned about."""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from PIL import Image

from consentgen.errors import ConfigError
from tests.c2pa_certs import fingerprint, make_chain, write_signer
from validation.release.provenance import ReleaseProvenance, Stamper
from validation.release.signer import (
    CA_FILE,
    CHAIN_FILE,
    DEV_ORGANISATION,
    DEV_SIGNER_DIR,
    KEY_FILE,
    SignerChange,
    ensure_dev_signer,
    load_credentials,
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


def race_for_signer(home: Path, processes: int) -> set[str]:
    """The signer fingerprints `processes` processes, started at once, each got from
    `ensure_dev_signer(home)`; every one must exit 0."""
    code = ("import sys; from pathlib import Path; from validation.release.signer import "
            "ensure_dev_signer; c, _ = ensure_dev_signer(Path(sys.argv[1])); "
            "print(c.identity().sha256)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(home)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    prints = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    return prints


def test_processes_racing_to_make_it_end_with_one_signer(tmp_path: Path) -> None:
    prints = race_for_signer(tmp_path, 4)
    assert prints == {ensure_dev_signer(tmp_path)[0].identity().sha256}
    assert not list(tmp_path.glob("keys/.tmp-*"))


# --- validity, renewal, leftovers, durability, key permissions -------------------------

DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(("start", "end", "words"), [
    (-900, -2, "expired on"),
    (3, 900, "is not valid before"),
])
def test_a_certificate_outside_its_validity_is_refused_in_one_line(
        tmp_path: Path, start: int, end: int, words: str) -> None:
    now = dt.datetime.now(dt.UTC)
    chain, key, ca = write_signer(tmp_path, make_chain(now + start * DAY, now + end * DAY))
    with pytest.raises(ConfigError) as refused:
        load_credentials(chain, key, ca)
    message = str(refused.value)
    day = (now + (end if start < 0 else start) * DAY).strftime("%Y-%m-%d")
    assert "\n" not in message and str(chain) in message and words in message
    assert day in message
    assert "provenance.sign_cert" in message  # what to do about it


def test_a_development_signer_outside_its_validity_points_at_init(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    chain, key, ca = write_signer(tmp_path, make_chain(now - 900 * DAY, now - 2 * DAY))
    with pytest.raises(ConfigError, match="consentgen init renews"):
        load_credentials(chain, key, ca, development=True)


@pytest.mark.parametrize("left_days", [10, -3])
def test_an_expiring_or_expired_development_signer_is_renewed(tmp_path: Path, left_days: int) -> None:
    ensure_dev_signer(tmp_path)
    now = dt.datetime.now(dt.UTC)
    folder = tmp_path / DEV_SIGNER_DIR
    old = make_chain(now - 800 * DAY, now + left_days * DAY, "old")
    write_signer(folder, old)

    renewed, change = ensure_dev_signer(tmp_path)
    assert change == SignerChange.RENEWED and change  # counts as made now
    assert renewed.identity().not_after > now + 800 * DAY
    assert fingerprint(renewed.chain_pem) != fingerprint(old[0])
    assert renewed.trust_pem != old[2]  # a new CA too
    aside = [p for p in folder.parent.iterdir() if p.name != folder.name]
    until = (now + left_days * DAY).strftime("%Y-%m-%d")
    assert [p.name for p in aside] == [f"dev-signer.until-{until}.{fingerprint(old[0])[:8]}"]
    assert [(aside[0] / n).read_bytes() for n in (CHAIN_FILE, KEY_FILE, CA_FILE)] == list(old)

    again, change = ensure_dev_signer(tmp_path)
    assert change == SignerChange.KEPT and not change and again == renewed


def test_processes_racing_to_renew_it_end_with_one_new_signer(tmp_path: Path) -> None:
    ensure_dev_signer(tmp_path)
    now = dt.datetime.now(dt.UTC)
    old = make_chain(now - 800 * DAY, now + 5 * DAY, "old")
    write_signer(tmp_path / DEV_SIGNER_DIR, old)
    prints = race_for_signer(tmp_path, 6)
    now_signer = ensure_dev_signer(tmp_path)
    assert prints == {now_signer[0].identity().sha256} and now_signer[1] == SignerChange.KEPT
    assert fingerprint(old[0]) not in prints
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == sorted(
        ["dev-signer", f"dev-signer.until-{(now + 5 * DAY):%Y-%m-%d}.{fingerprint(old[0])[:8]}"])


def test_a_write_that_fails_half_way_leaves_no_key_behind(tmp_path: Path) -> None:
    """A real failure: the file size limit lets the key through and stops the next file."""
    code = ("import resource, signal, sys; from pathlib import Path; "
            "from validation.release.signer import ensure_dev_signer; "
            "from consentgen.errors import ConsentgenError; "
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (400, 400))\n"
            "try:\n    ensure_dev_signer(Path(sys.argv[1]))\n"
            "except ConsentgenError as exc:\n    print('refused:', exc)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: provenance: cannot make the development signer")
    assert len(done.stdout.strip().splitlines()) == 1
    assert list((tmp_path / "keys").iterdir()) == []  # no temp folder, no key, no signer


def test_stale_temp_folders_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    stale, live = keys / ".tmp-dev-signer-0dead0", keys / ".tmp-dev-signer-1ive11"
    for folder in (stale, live):
        write_signer(folder, make_chain(dt.datetime.now(dt.UTC) - DAY,
                                        dt.datetime.now(dt.UTC) + DAY))
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    ensure_dev_signer(tmp_path)
    assert not stale.exists()
    assert live.is_dir()  # another process may be writing it right now


def test_the_files_and_folders_are_synced_around_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    ensure_dev_signer(tmp_path)
    keys = str(tmp_path / "keys")
    temp = [p for p in synced if Path(p).parent == Path(keys) and ".tmp-dev-signer-" in p]
    assert len(set(temp)) == 1, synced  # the temp folder itself
    for name in (CA_FILE, CHAIN_FILE, KEY_FILE):
        assert f"{temp[0]}/{name}" in synced
    assert synced.index(temp[0]) > max(synced.index(f"{temp[0]}/{n}") for n in (CA_FILE, CHAIN_FILE, KEY_FILE))
    assert keys in synced and synced.index(keys) > synced.index(temp[0])  # after the rename


def test_a_deployment_key_others_can_read_is_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    now = dt.datetime.now(dt.UTC)
    chain, key, ca = write_signer(tmp_path, make_chain(now - DAY, now + 300 * DAY), key_mode=0o644)
    with caplog.at_level(logging.WARNING, logger="validation.release.signer"):
        load_credentials(chain, key, ca)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and str(key) in warned[0] and "0644" in warned[0]
    assert "\n" not in warned[0]
    caplog.clear()
    key.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="validation.release.signer"):
        load_credentials(chain, key, ca)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_a_deployment_certificate_in_its_last_days_is_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    now = dt.datetime.now(dt.UTC)
    chain, key, ca = write_signer(tmp_path, make_chain(now - 300 * DAY, now + 10 * DAY))
    with caplog.at_level(logging.WARNING, logger="validation.release.signer"):
        load_credentials(chain, key, ca)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and str(chain) in warned[0]
    assert f"expires on {now + 10 * DAY:%Y-%m-%d}" in warned[0]
