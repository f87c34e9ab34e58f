"""Stamping a release's images at publish: watermark, XMP, signed C2PA manifest, checked.

Publish (`pipelines.steps.release`) hands every audited candidate to `ReleaseStamp.write`,
after the audit and before anything becomes visible:

1. the invisible watermark (a tag naming the release) when the build file wants one and
   the image size carries it reliably (`validation.release.watermark.can_carry`);
2. our one XMP packet and a C2PA manifest signed with the deployment's certificate, or
   the home's development signer when the build file names none
   (`validation.release.provenance`);
3. the metadata gate on the written file, which allows exactly that release's
   provenance (verified against the trust anchors) and refuses everything else.

The card reports the same `StampInfo` that publish used, so what it says each image
carries is what was written.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from pydantic import BaseModel, ConfigDict

from consentgen.errors import ReleaseError
from pipelines.settings import BuildConfig, ProvenanceSettings
from validation.release.metadata import find_identifying_metadata
from validation.release.provenance import (
    ExpectedProvenance,
    ReleaseProvenance,
    Stamper,
)
from validation.release.signer import (
    SigningCredentials,
    SigningIdentity,
    ensure_dev_signer,
    load_credentials,
)


class StampInfo(BaseModel):
    """What every image of a release carries, and who signed it (public facts only)."""

    model_config = ConfigDict(frozen=True)

    provenance: ReleaseProvenance
    signer: SigningIdentity
    watermark: bool
    watermark_note: str
    """Why the watermark is on or off, in a sentence for the card."""


def signing_credentials(home: Path, settings: ProvenanceSettings) -> SigningCredentials:
    """The build file's signer, or the home's development signer (made on first use)."""
    if settings.sign_cert is not None and settings.sign_key is not None:
        return load_credentials(settings.sign_cert, settings.sign_key, settings.trust_anchors)
    return ensure_dev_signer(home)[0]


def watermark_plan(config: BuildConfig) -> tuple[bool, str]:
    """Whether this build's images get the watermark, and the card's sentence on it."""
    from validation.release.watermark import MIN_WATERMARK_SIZE, can_carry

    size = config.generator.image_size
    if not config.provenance.watermark:
        return False, "No invisible watermark: turned off in the build file (provenance.watermark)."
    if not can_carry(size):
        return False, (f"No invisible watermark: {size} px images are below {MIN_WATERMARK_SIZE} px, "
                       "the smallest size from which the tag reads back reliably after a re-save "
                       "(bench/watermark.py).")
    return True, (f"An invisible watermark (invisible-watermark dwtDct) carries the release tag; it "
                  f"reads back from {MIN_WATERMARK_SIZE} px up after a PNG re-save "
                  "(bench/watermark.py) and survives the loss of the XMP and C2PA blocks.")


class ReleaseStamp:
    """The stamping of one release's images (see the module's docstring)."""

    def __init__(self, home: Path, config: BuildConfig, version: str, ledger_head: str) -> None:
        self.version = version
        self.credentials = signing_credentials(home, config.provenance)
        self.provenance = ReleaseProvenance(
            release=version, generator=config.generator.kind, ledger_head=ledger_head,
            training_mining=config.provenance.training_mining)
        self.watermark, note = watermark_plan(config)
        self.info = StampInfo(provenance=self.provenance, signer=self.credentials.identity(),
                              watermark=self.watermark, watermark_note=note)
        self.expected = ExpectedProvenance(provenance=self.provenance,
                                           trust_pem=self.credentials.trust_pem)
        self._stamper: Stamper | None = None

    def __enter__(self) -> ReleaseStamp:
        self._stamper = Stamper(self.credentials, self.provenance)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stamper is not None:
            self._stamper.close()
            self._stamper = None

    def write(self, source: Path, target: Path) -> None:
        """Publish one candidate PNG as `target`, stamped; refuse it unless the written
        file carries exactly this release's provenance."""
        if self._stamper is None:
            raise RuntimeError("ReleaseStamp.write outside its `with` block")
        with Image.open(io.BytesIO(source.read_bytes())) as opened:
            image = opened.copy()
        if self.watermark:
            from validation.release.watermark import embed_watermark

            image = embed_watermark(image, self.version)
        target.write_bytes(self._stamper.stamp(image))
        findings = find_identifying_metadata(target, provenance=self.expected)
        if findings:
            first = findings[0]
            raise ReleaseError(f"{target.name}: {first.kind} {first.key} {first.detail}".rstrip())
