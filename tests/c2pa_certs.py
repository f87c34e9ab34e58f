"""Test-made C2PA credentials and signed files: a throwaway CA, a leaf, and a signer.

The tests never use the product's own development CA (`consentgen init` makes one) to
make their inputs, so that a bug there cannot hide behind itself; this helper follows
the facts in STACK-NOTES ("Provenance"): EC P-256, a leaf with digitalSignature and
emailProtection, SKI and AKI, the PEM chain leaf first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from validation.release.signer import CA_FILE, CHAIN_FILE, KEY_FILE

CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@dataclass(frozen=True)
class TestCredentials:
    __test__ = False  # a helper, not a test class

    ca_pem: bytes
    chain_pem: bytes
    """The leaf, then the CA."""
    key_pem: bytes

    def signer(self) -> c2pa.Signer:
        info = c2pa.C2paSignerInfo(alg=b"es256", sign_cert=self.chain_pem,
                                   private_key=self.key_pem, ta_url=None)
        return c2pa.Signer.from_info(info)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "consentgen tests")])


def _usage(*, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not sign, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=sign, crl_sign=sign, encipher_only=False,
                         decipher_only=False)


def make_credentials(name: str = "test", *, not_before: dt.datetime | None = None,
                     not_after: dt.datetime | None = None) -> TestCredentials:
    """A CA and a leaf under it; the leaf valid from `not_before` to `not_after` (default:
    now, for a year; either may be in the past), the CA over all of that and now."""
    now = dt.datetime.now(dt.UTC)
    start = not_before or now - dt.timedelta(minutes=5)
    end = not_after or now + dt.timedelta(days=365)
    ca_start, ca_end = min(start, now) - dt.timedelta(minutes=5), max(end, now + dt.timedelta(days=365))
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey,
                valid: tuple[dt.datetime, dt.datetime]) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(valid[0]).not_valid_after(valid[1])
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False))

    ca = (builder(f"{name} CA", f"{name} CA", ca_key, (ca_start, ca_end))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_usage(sign=True), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (builder(f"{name} signer", f"{name} CA", leaf_key, (start, end))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return TestCredentials(
        ca_pem=ca.public_bytes(pem),
        chain_pem=leaf.public_bytes(pem) + ca.public_bytes(pem),
        key_pem=leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()),
    )


def created(source_type: str = CAPTURE) -> dict[str, Any]:
    """The actions assertion a v2 claim needs first (c2pa-rs refuses a claim without it)."""
    return {"label": "c2pa.actions",
            "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": source_type}]}}


def training_mining(spelling: str, use: str, *keys: str) -> dict[str, Any]:
    """A `c2pa.training-mining` or `cawg.training-mining` assertion with `use` for `keys`
    (default: AI training)."""
    keys = keys or ("ai_training",)
    return {"label": f"{spelling}.training-mining",
            "data": {"entries": {f"{spelling}.{k}": {"use": use} for k in keys}}}


def sign_bytes(data: bytes, mime: str, assertions: list[dict[str, Any]],
               credentials: TestCredentials, *, thumbnail: bool = False) -> bytes:
    """`data` with a manifest holding `assertions`, signed by `credentials`."""
    manifest = {"claim_generator_info": [{"name": "consentgen-tests", "version": "1"}],
                "assertions": assertions}
    context = c2pa.Context(settings=c2pa.Settings.from_dict(
        {"builder": {"thumbnail": {"enabled": thumbnail}}}))
    out = io.BytesIO()
    with credentials.signer() as signer, c2pa.Builder(json.dumps(manifest), context=context) as b:
        b.sign(signer, mime, io.BytesIO(data), out)
    return out.getvalue()


def sign_over(signed: bytes, mime: str, assertions: list[dict[str, Any]],
              credentials: TestCredentials) -> bytes:
    """`signed` with a new active manifest holding `assertions` (after a c2pa.opened action
    that names `signed` as its parent ingredient), so the store holds both manifests."""
    opened = {"label": "c2pa.actions",
              "data": {"actions": [{"action": "c2pa.opened",
                                    "parameters": {"ingredientIds": ["parent"]}}]}}
    manifest = {"claim_generator_info": [{"name": "consentgen-tests", "version": "1"}],
                "assertions": [opened, *assertions]}
    context = c2pa.Context(settings=c2pa.Settings.from_dict(
        {"builder": {"thumbnail": {"enabled": False}}}))
    out = io.BytesIO()
    with credentials.signer() as signer, c2pa.Builder(json.dumps(manifest), context=context) as b:
        b.add_ingredient({"title": "parent", "relationship": "parentOf", "label": "parent"},
                         mime, io.BytesIO(signed))
        b.sign(signer, mime, io.BytesIO(signed), out)
    return out.getvalue()


def make_chain(not_before: dt.datetime, not_after: dt.datetime,
               name: str = "test") -> tuple[bytes, bytes, bytes]:
    """(chain PEM leaf first, leaf key PEM, CA PEM) of `make_credentials`, the leaf valid
    from `not_before` to `not_after`: the three files a signer folder holds."""
    made = make_credentials(name, not_before=not_before, not_after=not_after)
    return made.chain_pem, made.key_pem, made.ca_pem


def write_signer(folder: Path, chain: tuple[bytes, bytes, bytes], *, key_mode: int = 0o600,
                 names: tuple[str, str, str] = (CHAIN_FILE, KEY_FILE, CA_FILE),
                 ) -> tuple[Path, Path, Path]:
    """The chain's three files in `folder` (replacing what is there); the default names
    are a development signer folder's."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = tuple(folder / n for n in names)
    for path, data in zip(paths, chain, strict=True):
        path.write_bytes(data)
    paths[1].chmod(key_mode)
    return paths  # type: ignore[return-value]


def fingerprint(chain_pem: bytes) -> str:
    """SHA-256 of the chain's leaf (DER), as `SigningIdentity.sha256` gives it."""
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
