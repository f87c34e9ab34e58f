"""`consentgen init` makes the home's local development signer, says it is untrusted, and
keeps it, renewing it (and saying so) when its certificate expires within 30 days; a
build file naming the deployment's certificate gets none."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

from cryptography import x509

from tests.c2pa_certs import make_credentials
from tests.pipelines.cli.console import ok, run
from tests.c2pa_certs import fingerprint, make_chain, write_signer
from validation.release.signer import CA_FILE, CHAIN_FILE, DEV_SIGNER_DIR, KEY_FILE


def signer_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("signer ")]
    assert len(lines) == 1, out
    return lines[0]


def test_init_makes_an_untrusted_development_signer_once(home: Path) -> None:
    folder = home / DEV_SIGNER_DIR
    line = signer_line(ok(home, "init"))
    assert str(folder) in line and "(made)" in line
    assert "UNTRUSTED local development CA and signer" in line
    assert "provenance.sign_cert and provenance.sign_key" in line
    assert stat.S_IMODE((folder / KEY_FILE).stat().st_mode) == 0o600
    chain = x509.load_pem_x509_certificates((folder / CHAIN_FILE).read_bytes())
    ca = x509.load_pem_x509_certificate((folder / CA_FILE).read_bytes())
    assert len(chain) == 2 and chain[1] == ca and chain[0].issuer == ca.subject
    assert "untrusted" in ca.subject.rfc4514_string()
    before = {name: (folder / name).read_bytes() for name in (CA_FILE, CHAIN_FILE, KEY_FILE)}

    again = signer_line(ok(home, "init"))
    assert "(kept as it was)" in again and "UNTRUSTED" in again
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in folder.iterdir()) == sorted(before)
    assert [p.name for p in folder.parent.iterdir()] == ["dev-signer"]  # no temp folder left


def test_a_build_file_with_its_own_certificate_gets_no_development_signer(home: Path) -> None:
    creds = make_credentials("hospital")
    (home / "pki").mkdir()
    (home / "pki" / "chain.pem").write_bytes(creds.chain_pem)
    (home / "pki" / "signer.key").write_bytes(creds.key_pem)
    (home / "consentgen.toml").write_text(
        '[provenance]\nsign_cert = "pki/chain.pem"\nsign_key = "pki/signer.key"\n')
    line = signer_line(ok(home, "init"))
    assert str(home / "pki" / "chain.pem") in line and "provenance.sign_cert" in line
    assert "UNTRUSTED" not in line
    assert not (home / DEV_SIGNER_DIR).exists()


def test_init_renews_a_development_signer_about_to_expire(home: Path) -> None:
    ok(home, "init")
    folder = home / DEV_SIGNER_DIR
    now = dt.datetime.now(dt.UTC)
    old = make_chain(now - dt.timedelta(days=800), now + dt.timedelta(days=12), "old")
    write_signer(folder, old)
    done = run(home, "init")
    assert done.returncode == 0, done.stderr
    line = signer_line(done.stdout)
    assert "(renewed)" in line and "UNTRUSTED" in line
    aside = folder.with_name(f"dev-signer.until-{now + dt.timedelta(days=12):%Y-%m-%d}."
                             f"{fingerprint(old[0])[:8]}")
    warned = [x for x in done.stderr.splitlines() if "renewed the development signer" in x]
    assert len(warned) == 1 and str(aside) in warned[0], done.stderr
    assert (aside / CHAIN_FILE).read_bytes() == old[0]
    leaf = x509.load_pem_x509_certificates((folder / CHAIN_FILE).read_bytes())[0]
    assert leaf.not_valid_after_utc > now + dt.timedelta(days=800)
    assert "(kept as it was)" in signer_line(ok(home, "init"))
