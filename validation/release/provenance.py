"""Our own provenance on every published image, and the check that it is exactly ours.

A published PNG says what it is in two places a reader's tools look (DESIGN.md
invariant 5): an XMP packet with ``Iptc4xmpExt:DigitalSourceType`` =
trainedAlgorithmicMedia, and a C2PA manifest signed with the deployment's certificate
holding three assertions and nothing else:

- ``c2pa.actions.v2``: one ``c2pa.created`` action with that digital source type;
- ``cawg.training-mining``: the build file's answer (default notAllowed) for AI
  training, generative training, data mining and inference — the ``cawg.*`` spelling,
  the successor of ``c2pa.*``;
- ``org.consentgen.release``: the release version, the generator kind and the consent
  ledger head hash the build read — nothing that names a source or a subject.

No thumbnail (it would be a second copy of the pixels, and grows a 32 px image to
~105 KB) and no ingredients. Both blocks are made here and checked here, so the gate
that refuses every other metadata block (`validation.release.metadata`) can allow
exactly these: the XMP packet must be byte-for-byte ours, and the manifest must verify
(signature, data hash over every other byte of the file) against the deployment's trust
anchors and hold exactly the assertions above with exactly the expected values.
"""

from __future__ import annotations

import io
import json
from typing import Literal

import c2pa
from PIL import Image, PngImagePlugin
from pydantic import BaseModel, ConfigDict, Field

from consentgen.errors import ConfigError, ReleaseError
from validation.release.signer import SigningCredentials
from validation.sources.pixels import short_error
from validation.sources.c2pa_store import C2paManifest, read_c2pa
from validation.sources.xmp import XMP_PNG_KEY

TRAINED_ALGORITHMIC_MEDIA = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
)
ACTIONS = "c2pa.actions.v2"
TRAINING_MINING = "cawg.training-mining"
RELEASE_ASSERTION = "org.consentgen.release"
TRAINING_KEYS = ("cawg.ai_training", "cawg.ai_generative_training", "cawg.data_mining",
                 "cawg.ai_inference")
CLAIM_GENERATOR = "consentgen"
TrainingUse = Literal["notAllowed", "allowed", "constrained"]

XMP_PACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" '
    'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    f'Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"/>'
    "</rdf:RDF></x:xmpmeta>"
    '<?xpacket end="r"?>'
)
"""The one XMP packet a published image carries, fixed so the gate can compare bytes."""


class ReleaseProvenance(BaseModel):
    """What every image of one release declares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    release: str
    generator: str
    ledger_head: str = Field(description="hash of the consent ledger head the build read")
    training_mining: TrainingUse = "notAllowed"

    def assertions(self) -> list[dict[str, object]]:
        return [
            {"label": ACTIONS, "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}]}},
            {"label": TRAINING_MINING,
             "data": {"entries": {key: {"use": self.training_mining} for key in TRAINING_KEYS}}},
            {"label": RELEASE_ASSERTION,
             "data": {"release": self.release, "generator": self.generator,
                      "consent_ledger_head": self.ledger_head}},
        ]


class ExpectedProvenance(BaseModel):
    """What the gate accepts on a published image: this release's provenance, signed by a
    chain that verifies against `trust_pem`."""

    model_config = ConfigDict(frozen=True)

    provenance: ReleaseProvenance
    trust_pem: bytes


def is_our_xmp(packet: bytes) -> bool:
    """Whether an XMP packet is exactly the one `stamp` writes."""
    return packet == XMP_PACKET.encode()


class Stamper:
    """Signs the images of one release: one SDK signer, one manifest definition.

    Use as a context manager; `stamp` takes a PNG (as Pillow image) and returns the bytes
    to publish."""

    def __init__(self, credentials: SigningCredentials, provenance: ReleaseProvenance) -> None:
        info = c2pa.C2paSignerInfo(alg=b"es256", sign_cert=credentials.chain_pem,
                                   private_key=credentials.key_pem, ta_url=None)
        try:
            self._signer = c2pa.Signer.from_info(info)
        except c2pa.C2paError as exc:
            raise ConfigError(f"provenance: the signing certificate or key is refused: "
                              f"{short_error(exc)}") from exc
        self._manifest = json.dumps({
            "claim_generator_info": [{"name": CLAIM_GENERATOR}],
            "assertions": provenance.assertions(),
        })
        self._context = c2pa.Context(settings=c2pa.Settings.from_dict(
            {"builder": {"thumbnail": {"enabled": False}}}))

    def __enter__(self) -> Stamper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._signer.close()
        self._context.close()

    def stamp(self, image: Image.Image) -> bytes:
        """The image as a PNG with our XMP packet, signed with our manifest."""
        info = PngImagePlugin.PngInfo()
        info.add_itxt(XMP_PNG_KEY.decode(), XMP_PACKET)
        plain = io.BytesIO()
        image.save(plain, "PNG", pnginfo=info)
        signed = io.BytesIO()
        try:
            with c2pa.Builder(self._manifest, context=self._context) as builder:
                builder.sign(self._signer, "image/png", io.BytesIO(plain.getvalue()), signed)
        except c2pa.C2paError as exc:  # e.g. a certificate past its validity
            raise ReleaseError(f"signing a published image failed: {short_error(exc)}") from exc
        return signed.getvalue()


def manifest_problems(data: bytes, expected: ExpectedProvenance | None) -> list[str]:
    """Why the C2PA store in a published PNG is not exactly ours ([] when it is).

    Without `expected` any store is a problem: candidates and card pictures carry none."""
    if expected is None:
        return ["a C2PA manifest where none is expected"]
    store = read_c2pa(data, "image/png", trust_anchors=expected.trust_pem.decode())
    if store is None or store.error:
        return [f"C2PA store unreadable ({store.error if store else 'no manifest found'})"]
    problems = [f"validation failed: {code}" for code in store.codes]
    if store.state != "Trusted":
        problems.append(f"validation state {store.state}, not Trusted by the release's anchors")
    manifest = store.active_manifest
    if len(store.manifests) != 1 or manifest is None:
        return problems + [f"{len(store.manifests)} manifests, expected exactly one"]
    return problems + _assertion_problems(manifest, expected.provenance)


def _assertion_problems(manifest: C2paManifest, provenance: ReleaseProvenance) -> list[str]:
    problems = []
    if manifest.ingredients:
        problems.append(f"{manifest.ingredients} ingredient(s)")
    if manifest.thumbnail:
        problems.append("a thumbnail")
    if manifest.claim_generator != (CLAIM_GENERATOR,):
        problems.append("another claim generator")
    wanted = {a["label"]: a["data"] for a in provenance.assertions()}
    found = {a.label: a.data for a in manifest.assertions}
    if len(found) != len(manifest.assertions):
        problems.append("an assertion label repeats")
    for label in sorted(found.keys() - wanted.keys()):
        problems.append(f"unexpected assertion {label}")
    for label in sorted(wanted.keys() - found.keys()):
        problems.append(f"missing assertion {label}")
    for label in sorted(wanted.keys() & found.keys()):
        if found[label] != wanted[label]:
            problems.append(f"assertion {label} differs from this release's")
    return problems
