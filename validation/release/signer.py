"""The certificate a release's images are signed with: the deployment's, or a local
development one.

A hospital signs its releases with a certificate its own PKI issues (paths in the build
file's ``[provenance]`` table). A home without one gets a *development* signer, made
once by `ensure_dev_signer` (``consentgen init`` calls it): a local CA and a leaf under
it, which c2pa-python and c2patool accept as a well-formed chain but nobody trusts, and
which the data card and ``verify-image`` name as untrusted. The CA's private key is
thrown away as soon as the leaf is signed: nothing in the home can issue another
certificate under that CA.

The shape follows what c2pa-rs accepts (STACK-NOTES, "Provenance"): EC P-256, a leaf
with digitalSignature (critical) and emailProtection, with SubjectKeyIdentifier and
AuthorityKeyIdentifier (without them the SDK calls the certificate invalid).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import shutil
from enum import StrEnum
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict

from consentgen.errors import ConfigError
from consentgen.files import fsync_dir

DEV_SIGNER_DIR = Path("keys") / "dev-signer"
"""Inside the data home: ``ca.pem`` (the trust anchor to verify with), ``chain.pem``
(leaf then CA) and ``signer.key`` (0600)."""
CA_FILE, CHAIN_FILE, KEY_FILE = "ca.pem", "chain.pem", "signer.key"
DEV_ORGANISATION = "consentgen local development (untrusted)"
_LEAF_DAYS, _CA_DAYS = 825, 3650


RENEW_BEFORE = dt.timedelta(days=30)
"""A development signer whose leaf expires sooner than this is renewed."""
STALE_TEMP = dt.timedelta(minutes=10)
"""A temp folder this old is a crashed process's leftover (making one takes ms)."""
_TMP_PREFIX = ".tmp-dev-signer-"
_ATTEMPTS = 4
_log = logging.getLogger(__name__)


class SignerChange(StrEnum):
    """What `ensure_dev_signer` did; truthy when a signer was made now (new or renewed)."""

    KEPT = "kept"
    MADE = "made"
    RENEWED = "renewed"

    def __bool__(self) -> bool:
        return self is not SignerChange.KEPT


class SigningIdentity(BaseModel):
    """What the card and ``verify-image`` say about a signer (public facts only)."""

    model_config = ConfigDict(frozen=True)

    subject: str
    issuer: str
    sha256: str
    """Fingerprint of the leaf certificate (DER)."""
    not_after: dt.datetime
    development: bool
    """A local development signer: untrusted by anyone but this home."""


class SigningCredentials(BaseModel):
    """A signer's PEM chain (leaf first), its private key, and the anchors to verify with."""

    model_config = ConfigDict(frozen=True)

    chain_pem: bytes
    key_pem: bytes
    trust_pem: bytes
    """The CA certificate(s) a reader should trust to verify this chain."""
    development: bool = False

    def identity(self) -> SigningIdentity:
        leaf = x509.load_pem_x509_certificates(self.chain_pem)[0]
        return SigningIdentity(
            subject=leaf.subject.rfc4514_string(),
            issuer=leaf.issuer.rfc4514_string(),
            sha256=_fingerprint(leaf),
            not_after=leaf.not_valid_after_utc,
            development=self.development,
        )


def load_credentials(chain: Path, key: Path, trust: Path | None, *,
                     development: bool = False) -> SigningCredentials:
    """The credentials in these PEM files, checked enough to fail in one line here
    rather than deep in the SDK: the chain parses, the key parses and matches the leaf,
    the leaf may sign (digitalSignature) and is valid now.

    Valid *now*, because releases carry no trusted timestamp (no TSA: nothing is fetched
    at run time), so readers check the certificate against their own clock: the SDK
    refuses to sign outside the validity, and every signature stops verifying once the
    leaf expires. A key file that group or others may read is signed with but warned
    about (logging), once per load."""
    try:
        chain_pem, key_pem = chain.read_bytes(), key.read_bytes()
        trust_pem = trust.read_bytes() if trust is not None else b""
    except OSError as exc:
        raise ConfigError(f"provenance: cannot read {exc.filename}: {exc.strerror}") from exc
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise ConfigError(f"provenance: {chain} holds no PEM certificate chain") from exc
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"provenance: {key} is not an unencrypted PEM private key") from exc
    if private.public_key().public_bytes(*_SPKI) != certs[0].public_key().public_bytes(*_SPKI):
        raise ConfigError(f"provenance: the key in {key} does not belong to the first "
                          f"certificate of {chain}")
    try:
        usage = certs[0].extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.digital_signature:
        raise ConfigError(f"provenance: the certificate in {chain} may not sign "
                          "(KeyUsage digitalSignature is missing)")
    _check_validity(certs[0], chain, development=development)
    _warn_if_exposed(key)
    if trust is not None:
        try:
            x509.load_pem_x509_certificates(trust_pem)
        except ValueError as exc:
            raise ConfigError(f"provenance: {trust} holds no PEM certificate") from exc
    return SigningCredentials(chain_pem=chain_pem, key_pem=key_pem,
                              trust_pem=trust_pem or certs[-1].public_bytes(_PEM),
                              development=development)


def _check_validity(leaf: x509.Certificate, chain: Path, *, development: bool) -> None:
    now = dt.datetime.now(dt.UTC)
    todo = ("consentgen init renews the development signer" if development else
            "have your PKI issue a new signing certificate and point provenance.sign_cert "
            "and provenance.sign_key at it")
    if now > leaf.not_valid_after_utc:
        raise ConfigError(f"provenance: the signing certificate in {chain} expired on "
                          f"{_day(leaf.not_valid_after_utc)}: images signed with it would not "
                          f"verify; {todo}")
    if now < leaf.not_valid_before_utc:
        raise ConfigError(f"provenance: the signing certificate in {chain} is not valid before "
                          f"{_day(leaf.not_valid_before_utc)} (is this machine's clock right?); "
                          f"{todo}")
    if not development and leaf.not_valid_after_utc - now < RENEW_BEFORE:
        _log.warning("provenance: the signing certificate in %s expires on %s: its images' "
                     "signatures stop verifying then; %s", chain,
                     _day(leaf.not_valid_after_utc), todo)


def _warn_if_exposed(key: Path) -> None:
    try:
        mode = key.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o077:
        _log.warning("provenance: the signing key %s is open to group or others (mode %04o); "
                     "chmod 600 it", key, mode)


def _day(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def ensure_dev_signer(home: Path) -> tuple[SigningCredentials, SignerChange]:
    """The home's development signer, made on first use and renewed (a new CA and leaf)
    when its leaf has expired or expires within `RENEW_BEFORE`; (credentials, change).

    Every step is one rename, so processes racing here end up with one signer and a crash
    leaves no half-made one: a new signer is written in a temp folder, synced, and renamed
    into place (which fails when another process got there first: theirs is the one);
    renewal first renames the old folder to ``dev-signer.until-DATE.FINGERPRINT``, a name
    fixed by the old leaf, so only one process can move it and none can move aside a
    signer another has just installed. The old folder is kept: releases signed with it ship
    its CA as ``card/trust-anchors.pem`` and verify against it until its leaf expires."""
    folder = home / DEV_SIGNER_DIR
    change = SignerChange.KEPT
    for _ in range(_ATTEMPTS):
        leaf = _leaf_to_replace(folder)
        if leaf is False:
            break
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            _sweep_stale(folder.parent)
            if leaf is not None:
                aside = folder.with_name(f"{folder.name}.until-{leaf.not_valid_after_utc:%Y-%m-%d}."
                                         f"{_fingerprint(leaf)[:8]}")
                try:
                    os.rename(folder, aside)
                except OSError:  # another process moved (and maybe renewed) it: look again
                    continue
                change = SignerChange.RENEWED
                past = leaf.not_valid_after_utc < dt.datetime.now(dt.UTC)
                _log.warning("provenance: renewed the development signer %s (its certificate "
                             "%s on %s); the old one is kept in %s", folder,
                             "expired" if past else "expires", _day(leaf.not_valid_after_utc), aside)
            if _install(folder) and change is SignerChange.KEPT:
                change = SignerChange.MADE
            fsync_dir(folder.parent)
        except OSError as exc:
            raise ConfigError(f"provenance: cannot make the development signer in "
                              f"{folder.parent}: {exc.strerror or exc}") from exc
    return load_credentials(folder / CHAIN_FILE, folder / KEY_FILE, folder / CA_FILE,
                            development=True), change


def _leaf_to_replace(folder: Path) -> x509.Certificate | None | Literal[False]:
    """None: no signer yet; a leaf: the signer to renew; False: keep what is there (a
    fresh signer, or a broken one that `load_credentials` then names)."""
    if not (folder / KEY_FILE).is_file():
        return None
    try:
        leaf = x509.load_pem_x509_certificates((folder / CHAIN_FILE).read_bytes())[0]
    except (OSError, ValueError):
        return False
    now = dt.datetime.now(dt.UTC)
    if leaf.not_valid_before_utc <= now and now + RENEW_BEFORE < leaf.not_valid_after_utc:
        return False
    return leaf


def _install(folder: Path) -> bool:
    """A new signer renamed into `folder`; False when another process's is there first."""
    tmp = folder.with_name(f"{_TMP_PREFIX}{secrets.token_hex(4)}")
    tmp.mkdir(mode=0o700)
    try:
        _write_dev_signer(tmp, "consentgen")
        fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    return True


def _sweep_stale(keys: Path) -> None:
    """Remove temp folders that crashed processes left (they may hold a private key);
    younger ones may be another process's signer being written, and stay."""
    cutoff = (dt.datetime.now(dt.UTC) - STALE_TEMP).timestamp()
    for entry in keys.glob(f"{_TMP_PREFIX}*"):
        try:
            stale = entry.lstat().st_mtime < cutoff
        except OSError:
            continue
        if stale and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


_PEM = serialization.Encoding.PEM
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_dev_signer(folder: Path, label: str) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{label} development CA")
    ca = (_certificate(ca_name, ca_name, ca_key, now, _CA_DAYS)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_key_usage(ca=True), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (_certificate(_name(f"{label} release signer"), ca_name, leaf_key, now, _LEAF_DAYS)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_synced(folder / KEY_FILE, leaf_key.private_bytes(
        _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
    _write_synced(folder / CA_FILE, ca.public_bytes(_PEM), 0o644)
    _write_synced(folder / CHAIN_FILE, leaf.public_bytes(_PEM) + ca.public_bytes(_PEM), 0o644)


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORGANISATION)])


def _certificate(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
                 now: dt.datetime, days: int) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)
