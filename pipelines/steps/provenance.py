"""Stamping a release's images at publish: watermark, XMP, signed C2PA manifest, checked.

Publish (`pipelines.steps.release`) hands every audited candidate to `ReleaseStamp.write`,
after the audit and before anything becomes visible:

1. the invisible watermark (a tag naming the release) when the build file wants one and
   the image size carries it reliably (`validation.release.watermark.can_carry`), audited
   again as published (`stamp_release`);
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
from dataclasses import replace
from pathlib import Path

from PIL import Image
from pydantic import BaseModel, ConfigDict

from consentgen.errors import ReleaseError
from pipelines.catalog import AuditRow, Catalog
from pipelines.settings import BuildConfig, ProvenanceSettings
from pipelines.steps.images import load_gray
from pipelines.steps.public_manifest import StagedImage
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
from validation.release.watermark import MIN_WATERMARK_SIZE, can_carry, describe, embed_watermark


class StampInfo(BaseModel):
    """What every image of a release carries, and who signed it (public facts only)."""

    model_config = ConfigDict(frozen=True)

    provenance: ReleaseProvenance
    signer: SigningIdentity
    trust_pem: bytes
    """The public CA certificate(s) the images verify against (shipped with the card)."""
    watermark: bool
    watermark_note: str
    """Why the watermark is on or off, in a sentence for the card."""
    unmarked: int = 0
    """Images published without the mark: marked, they failed the audit again."""


def signing_credentials(home: Path, settings: ProvenanceSettings) -> SigningCredentials:
    """The build file's signer, or the home's development signer (made on first use)."""
    if settings.sign_cert is not None and settings.sign_key is not None:
        return load_credentials(settings.sign_cert, settings.sign_key, settings.trust_anchors)
    return ensure_dev_signer(home)[0]


def watermark_plan(config: BuildConfig) -> tuple[bool, str]:
    """Whether this build's images get the watermark, and the card's sentence on it."""
    size = config.generator.image_size
    if not config.provenance.watermark:
        return False, "No invisible watermark: turned off in the build file (provenance.watermark)."
    if not can_carry(size):
        return False, (f"No invisible watermark: {size} px images are below {MIN_WATERMARK_SIZE} px, "
                       "the smallest size from which every tag reads back after a PNG re-save and "
                       "a JPEG q75 (bench/watermark.py).")
    return True, (f"An invisible watermark carries the release tag ({describe()}); it survives "
                  f"the loss of the XMP and C2PA blocks: at {MIN_WATERMARK_SIZE} px every tag read "
                  "back after a PNG re-save and a JPEG q75, and 92 % after a 0.9 resize "
                  "(bench/watermark.py). Marked images were audited again as published, and an "
                  "image the mark would have moved across an audit threshold is published unmarked.")


class ReleaseStamp:
    """The stamping of one release's images (see the module's docstring)."""

    def __init__(self, home: Path, config: BuildConfig, version: str, ledger_head: str) -> None:
        self.version = version
        self.credentials = signing_credentials(home, config.provenance)
        self.provenance = ReleaseProvenance(
            release=version, generator=config.generator.kind, ledger_head=ledger_head,
            training_mining=config.provenance.training_mining)
        self.watermark, self._note = watermark_plan(config)
        self.unmarked = 0
        self.expected = ExpectedProvenance(provenance=self.provenance,
                                           trust_pem=self.credentials.trust_pem)
        self._stamper: Stamper | None = None

    @property
    def info(self) -> StampInfo:
        return StampInfo(provenance=self.provenance, signer=self.credentials.identity(),
                         trust_pem=self.credentials.trust_pem, watermark=self.watermark,
                         watermark_note=self._note, unmarked=self.unmarked)

    def __enter__(self) -> ReleaseStamp:
        self._stamper = Stamper(self.credentials, self.provenance)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stamper is not None:
            self._stamper.close()
            self._stamper = None

    def write(self, source: Path, target: Path, *, mark: bool = True) -> None:
        """Publish one candidate PNG as `target`, stamped (and marked, when this release
        marks and `mark`); refuse it unless the written file carries exactly this
        release's provenance."""
        if self._stamper is None:
            raise RuntimeError("ReleaseStamp.write outside its `with` block")
        with Image.open(io.BytesIO(source.read_bytes())) as opened:
            image = opened.copy()
        if self.watermark and mark:
            image = embed_watermark(image, self.version)
        target.write_bytes(self._stamper.stamp(image))
        findings = find_identifying_metadata(target, provenance=self.expected)
        if findings:
            first = findings[0]
            raise ReleaseError(f"{target.name}: {first.kind} {first.key} {first.detail}".rstrip())


AUDIT_CHUNK = 512
"""Published files audited again per batch (bounded memory at 256 px)."""


def stamp_release(catalog: Catalog, config: BuildConfig, stamp: ReleaseStamp,
                  staged: list[StagedImage], folder: Path) -> list[StagedImage]:
    """Write every staged image into `folder` stamped; return them with the audit of the
    files as published.

    The watermark changes pixels after the audit, and measured on Br35H it moves the
    audit's distances a little (bench/watermark.py: pHash up to 8 bits at 64 px), which
    can cross a threshold. So the marked files are audited again against every source,
    and one that is flagged now is written again unmarked: what ships is either the
    audited candidate itself or a marked copy that passes the same audit, and the public
    manifest's distances are those of the file beside it."""
    targets = []
    for s in staged:
        target = folder / s.file_name(config)
        target.parent.mkdir(parents=True, exist_ok=True)
        stamp.write(catalog.home / s.candidate.image_path, target)
        targets.append(target)
    if not stamp.watermark:
        return staged
    from pipelines.steps.audit import source_index  # torch and faiss: only when marking

    index = source_index(catalog, config)
    shipped = []
    for lo in range(0, len(staged), AUDIT_CHUNK):
        part, paths = staged[lo:lo + AUDIT_CHUNK], targets[lo:lo + AUDIT_CHUNK]
        table = index.audit(load_gray(paths, config.generator.image_size),
                            [s.image_id for s in part]).table.to_pylist()
        for s, path, row in zip(part, paths, table, strict=True):
            if row["flagged"]:
                stamp.write(catalog.home / s.candidate.image_path, path, mark=False)
                stamp.unmarked += 1
                shipped.append(s)
            else:
                shipped.append(replace(s, audit=_audit_of(s.audit, row)))
    return shipped


def _audit_of(audit: AuditRow, row: dict[str, object]) -> AuditRow:
    return audit.model_copy(update={
        "phash_distance": int(row["phash_distance"]), "pixel_l2": float(row["pixel_l2"]),
        "patch_l2": float(row["patch_l2"]), "embedding_cosine": float(row["embedding_cosine"]),
        "nearest_phash": row["phash_source_id"], "nearest_pixel": row["pixel_l2_source_id"],
        "nearest_patch": row["patch_l2_source_id"],
        "nearest_embedding": row["embedding_source_id"]})
