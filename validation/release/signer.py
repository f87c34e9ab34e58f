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
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict

from consentgen.errors import ConfigError

DEV_SIGNER_DIR = Path("keys") / "dev-signer"
"""Inside the data home: ``ca.pem`` (the trust anchor to verify with), ``chain.pem``
(leaf then CA) and ``signer.key`` (0600)."""
CA_FILE, CHAIN_FILE, KEY_FILE = "ca.pem", "chain.pem", "signer.key"
DEV_ORGANISATION = "consentgen local development (untrusted)"
_LEAF_DAYS, _CA_DAYS = 825, 3650


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
            sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
            not_after=leaf.not_valid_after_utc,
            development=self.development,
        )


def load_credentials(chain: Path, key: Path, trust: Path | None, *,
                     development: bool = False) -> SigningCredentials:
    """The credentials in these PEM files, checked enough to fail in one line here
    rather than deep in the SDK: the chain parses, the key parses and matches the leaf,
    and the leaf may sign (digitalSignature)."""
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
    if trust is not None:
        try:
            x509.load_pem_x509_certificates(trust_pem)
        except ValueError as exc:
            raise ConfigError(f"provenance: {trust} holds no PEM certificate") from exc
    return SigningCredentials(chain_pem=chain_pem, key_pem=key_pem,
                              trust_pem=trust_pem or certs[-1].public_bytes(_PEM),
                              development=development)


def ensure_dev_signer(home: Path) -> tuple[SigningCredentials, bool]:
    """The home's development signer, made on first use; (credentials, made now).

    Made in a temporary folder and renamed into place, so two processes racing here
    end up with the same signer and a crash leaves no half-made one."""
    folder = home / DEV_SIGNER_DIR
    made = False
    if not (folder / KEY_FILE).is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".tmp-dev-signer-{secrets.token_hex(4)}"
        tmp.mkdir(mode=0o700)
        _write_dev_signer(tmp, "consentgen")
        try:
            os.rename(tmp, folder)
            made = True
        except OSError:  # another process made it first: theirs is the one
            for name in (CA_FILE, CHAIN_FILE, KEY_FILE):
                (tmp / name).unlink(missing_ok=True)
            tmp.rmdir()
    return load_credentials(folder / CHAIN_FILE, folder / KEY_FILE, folder / CA_FILE,
                            development=True), made


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
    (folder / CA_FILE).write_bytes(ca.public_bytes(_PEM))
    (folder / CHAIN_FILE).write_bytes(leaf.public_bytes(_PEM) + ca.public_bytes(_PEM))
    fd = os.open(folder / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(leaf_key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
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
