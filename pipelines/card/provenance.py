"""What the data card says about the provenance every published image carries.

Publish stamps each image (`pipelines.steps.provenance`): an XMP packet with
``Iptc4xmpExt:DigitalSourceType`` = trainedAlgorithmicMedia and a C2PA manifest signed
with the deployment's certificate (or the home's local development signer) holding
three assertions. `ProvenanceInfo` is the card's record of that, public facts only: the
assertions' values (release, generator, consent ledger head, the training-mining
answer), the signing certificate's subject, issuer, fingerprint and expiry (until which
the signatures verify: they carry no trusted timestamp), and the trust anchor(s) a
reader verifies with.

The anchors' PEM (CA certificates, never a key) is on the model so the release ships
it as ``card/trust-anchors.pem`` and a withdrawal's redraw (from ``card.json``) keeps
it: the card's instructions then work on a downloaded copy, offline. A development
signer is said loudly, at the top of the card and in its section, because nobody but
the home trusts it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from pipelines.card.formatting import timestamp
from validation.release.provenance import (
    ACTIONS,
    RELEASE_ASSERTION,
    TRAINED_ALGORITHMIC_MEDIA,
    TRAINING_MINING,
    TrainingUse,
)

TRUST_ANCHORS_FILE = "card/trust-anchors.pem"
"""The public CA certificate(s) shipped with the release, relative to its folder."""
_HEX64 = r"^[0-9a-f]{64}$"
_PEM_CERT = "-----BEGIN CERTIFICATE-----"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SignerInfo(_Model):
    """The certificate the release's manifests are signed with (its leaf)."""

    subject: str = Field(max_length=1000)
    issuer: str = Field(max_length=1000)
    sha256: str = Field(pattern=_HEX64)
    """Fingerprint of the leaf certificate (DER)."""
    not_after: AwareDatetime
    development: bool
    """The home's local development signer: trusted by nobody but that home."""


class ProvenanceInfo(_Model):
    """What every image of the release carries, and how anyone can check it."""

    release: str = Field(pattern=r"^v\d{4,}$")
    generator: str = Field(max_length=64)
    ledger_head: str = Field(pattern=_HEX64)
    training_mining: TrainingUse
    signer: SignerInfo
    trust_anchors_pem: str = Field(max_length=64_000)
    """CA certificate(s), PEM: public, shipped as `TRUST_ANCHORS_FILE`."""
    watermark: bool
    watermark_note: str = Field(max_length=2000)

    @field_validator("trust_anchors_pem")
    @classmethod
    def _certificates_only(cls, value: str) -> str:
        """Only certificates may ship: a key (or anything else) pasted in is refused."""
        text = value.strip()
        blocks = [b for b in text.split("-----END CERTIFICATE-----") if b.strip()]
        if not text or any(not b.strip().startswith(_PEM_CERT) for b in blocks):
            raise ValueError("trust_anchors_pem must hold PEM certificates and nothing else")
        try:
            certs = x509.load_pem_x509_certificates(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ValueError(f"trust_anchors_pem is not a PEM certificate list: {exc}") from exc
        if len(certs) != len(blocks):
            raise ValueError("trust_anchors_pem holds something besides its certificates")
        return text + "\n"

    def anchors(self) -> list[tuple[str, str]]:
        """(subject, SHA-256 fingerprint) of each trust anchor."""
        certs = x509.load_pem_x509_certificates(self.trust_anchors_pem.encode("ascii"))
        return [(c.subject.rfc4514_string(),
                 hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest())
                for c in certs]


# --- the view ------------------------------------------------------------------------

DEVELOPMENT_WARNING = (
    "UNTRUSTED SIGNER: this release's images are signed with the data home's local "
    "development CA and signer (made by consentgen init), which nobody but that home "
    "trusts; for testing only. Set provenance.sign_cert and provenance.sign_key in the "
    "build file to sign releases that others should trust."
)
NOT_RECORDED = ("This card records no provenance: the release was published before its "
                "images were stamped.")
_MANIFEST = (
    "Signed by consentgen, with three assertions and nothing else: {actions} "
    "(one c2pa.created action, digitalSourceType trainedAlgorithmicMedia); {mining} "
    "(AI training, generative training, data mining and inference: {use}); {release} "
    "(release {version}, generator {generator}, consent ledger head {head}). No thumbnail, "
    "no ingredient, nothing that names a source or a subject."
)
_IMAGE = "images/<label>/<image>.png"
PYTHON_SNIPPET = f'''import c2pa

pem = open("{TRUST_ANCHORS_FILE}").read()
settings = c2pa.Settings.from_dict(
    {{"trust": {{"trust_anchors": pem}}, "verify": {{"verify_trust": True}}}})
with c2pa.Context(settings=settings) as context, \\
        c2pa.Reader("{_IMAGE}", context=context) as reader:
    print(reader.get_validation_state())  # Trusted
    print(reader.json())  # the three assertions
'''


@dataclass(frozen=True)
class VerifyStep:
    """One way to verify an image: a sentence and the command or code to run."""

    text: str
    code: str
    language: str
    """Of the Markdown code block: ``shell`` or ``python``."""


@dataclass(frozen=True)
class ProvenanceView:
    """The card's provenance section, formatted once for both templates."""

    rows: list[tuple[str, str]]
    warning: str | None
    """`DEVELOPMENT_WARNING` for a development signer, else None."""
    verify: list[VerifyStep]
    note: str | None
    """`NOT_RECORDED` for a card without provenance (then there are no rows)."""


def provenance_view(info: ProvenanceInfo | None) -> ProvenanceView:
    """The section's rows, warning and verification steps."""
    if info is None:
        return ProvenanceView(rows=[], warning=None, verify=[], note=NOT_RECORDED)
    signer = info.signer
    anchors = "; ".join(f"{subject} (SHA-256 {digest})" for subject, digest in info.anchors())
    rows = [
        ("XMP (Iptc4xmpExt:DigitalSourceType)", TRAINED_ALGORITHMIC_MEDIA),
        ("C2PA manifest", _MANIFEST.format(
            actions=ACTIONS, mining=TRAINING_MINING, use=info.training_mining,
            release=RELEASE_ASSERTION, version=info.release, generator=info.generator,
            head=info.ledger_head)),
        ("Signing certificate", signer.subject),
        ("Issued by", signer.issuer),
        ("Certificate SHA-256", signer.sha256),
        ("Valid until", f"{timestamp(signer.not_after)}: the images' signatures verify until "
         "then, not after: they carry no trusted timestamp (nothing is fetched when signing), "
         "so a reader checks the certificate against the current date"),
        ("Signer trusted by", "NOBODY: the local development signer (untrusted, for testing only)"
         if signer.development else "whoever trusts the anchors below"),
        ("Trust anchors", f"{TRUST_ANCHORS_FILE} in this release: {anchors}"),
        ("Invisible watermark", info.watermark_note),
    ]
    verify = [
        VerifyStep("With c2patool (its report says \"validation_state\": \"Trusted\"):",
                   f"c2patool {_IMAGE} trust --trust_anchors {TRUST_ANCHORS_FILE}", "shell"),
        VerifyStep("With c2pa-python:", PYTHON_SNIPPET, "python"),
        VerifyStep("With consentgen (the manifest, the XMP source type and the watermark; "
                   "exit status 0 when the manifest is trusted and ours, 4 once the signing "
                   "certificate has expired):",
                   f"consentgen verify-image {_IMAGE} --trust {TRUST_ANCHORS_FILE}", "shell"),
    ]
    return ProvenanceView(rows=rows, warning=DEVELOPMENT_WARNING if signer.development else None,
                          verify=verify, note=None)
