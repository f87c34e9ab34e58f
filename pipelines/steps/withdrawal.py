"""Taking published images down: the one place files leave a release.

An image is withdrawn from its release folder (file deleted, id appended to that
release's `WITHDRAWN` once, so mirrors can sync the deletion), recorded in the catalog
with why and how long after the cause, and banned: its candidate id and its pixels may
never be published again. What to take down is decided elsewhere — by the reconcile
(`pipelines.steps.reconcile`) from the ledger, or by an operator for one image
(`withdraw_image`); this module only carries it out.

Nothing here stops at a missing file or folder: the image is still recorded as withdrawn
(a folder deleted by hand, or a release that never appeared, holds nothing to delete),
and the outcome says so. Files are deleted before the rows are recorded, so a pass killed
half-way leaves the images "present" in the catalog and the next pass finishes the job:
deleting a missing file and listing an id already in `WITHDRAWN` both do nothing.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from consent.events import LedgerEvent, utc_now
from consentgen.crash import crashpoint
from consentgen.errors import ConsentgenError, ReleaseError
from consentgen.files import fsync_dir
from pipelines.catalog import Ban, Catalog, Withdrawal
from pipelines.catalog.lineage import PresentImage, present_images, release_images_by_id
from pipelines.catalog.reasons import WithdrawalReason
from pipelines.settings import BuildConfig
from pipelines.steps.bans import CANDIDATE, PIXELS, file_pixel_hash, load_bans
from pipelines.steps.locks import releases_lock
from pipelines.steps.release import WITHDRAWN, listed_withdrawn, releases_root


@dataclass(frozen=True)
class Takedown:
    """One image to take down, and why: the deciding ledger event (a revoke, or the grant
    that expired) and when consent ended, or neither for an operator's image withdrawal."""

    present: PresentImage
    reason: WithdrawalReason
    subject_id: str | None = None
    event: LedgerEvent | None = None
    effective_at: datetime | None = None
    note: str | None = None


@dataclass
class TakedownOutcome:
    withdrawn: dict[str, list[str]] = field(default_factory=dict)  # version -> image ids
    missing_folders: list[str] = field(default_factory=list)  # recorded, nothing to delete
    pending: list[str] = field(default_factory=list)  # not visible yet: publish's read decides
    missing_files: int = 0
    banned: int = 0  # new bans (candidates and pixels)
    unhashed: int = 0  # images whose pixels were gone, so only their candidate is banned
    rows: list[Withdrawal] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)  # release folders rewritten after
    problems: list[str] = field(default_factory=list)


def take_down(catalog: Catalog, items: list[Takedown], *, now: datetime | None = None) -> TakedownOutcome:
    """Withdraw `items` from their release folders and record rows and bans.

    The caller holds `releases_lock(home)` (with the decision of what to take down, so a
    publish's rename and last consent read fall wholly before or after it).
    """
    out = TakedownOutcome()
    if not items:
        return out
    hashes = [_pixels_of(catalog, t.present) for t in items]  # before any file goes
    by_version: dict[str, list[Takedown]] = defaultdict(list)
    for t in items:
        by_version[t.present.image.version].append(t)
    for version, batch in sorted(by_version.items()):
        folder = releases_root(catalog.home) / version
        if folder.is_dir():
            out.missing_files += _delete_and_list(folder, batch)
        elif all(t.present.status == "pending" for t in batch):
            out.pending.append(version)
        else:
            out.missing_folders.append(version)
        out.withdrawn[version] = [t.present.image.image_id for t in batch]
    at = now or utc_now()
    out.rows = [_row(t, at) for t in items]
    bans = _new_bans(catalog, [(t.present, t.reason, h) for t, h in zip(items, hashes, strict=True)], at)
    out.banned = len(bans)
    out.unhashed = hashes.count(None)
    crashpoint("withdraw.before_rows")
    catalog.add(out.rows, bans)
    return out


def _delete_and_list(folder: Path, batch: list[Takedown]) -> int:
    """Delete the files and list their ids in WITHDRAWN once; the number already gone."""
    missing = 0
    for t in batch:
        path = folder / t.present.image.file_name
        if path.exists():
            path.unlink()
            crashpoint("withdraw.file_deleted")
        else:
            missing += 1
    crashpoint("withdraw.before_listed")
    listing = folder / WITHDRAWN
    text = listing.read_text(encoding="utf-8") if listing.exists() else ""
    listed = set(text.split())
    new = [i for i in dict.fromkeys(t.present.image.image_id for t in batch) if i not in listed]
    if new:
        with open(listing, "a", encoding="utf-8") as fh:
            fh.write(("\n" if text and not text.endswith("\n") else "") + "".join(f"{i}\n" for i in new))
            fh.flush()
            os.fsync(fh.fileno())
    fsync_dir(folder)
    return missing


def _row(t: Takedown, at: datetime) -> Withdrawal:
    e = t.event
    return Withdrawal(
        version=t.present.image.version, image_id=t.present.image.image_id,
        subject_id=t.subject_id, event_seq=e.seq if e else None,
        revoked_recorded_at=e.recorded_at if e else None, withdrawn_at=at,
        latency_s=(at - e.recorded_at).total_seconds() if e else None,
        reason=t.reason.value, effective_at=t.effective_at,
        latency_effective_s=(at - t.effective_at).total_seconds() if t.effective_at else None,
        note=t.note,
    )


def _pixels_of(catalog: Catalog, present: PresentImage) -> str | None:
    """The pixel hash of the candidate's file, else of the copy in the release."""
    if present.candidate_path:
        found = file_pixel_hash(catalog.home / present.candidate_path)
        if found:
            return found
    return file_pixel_hash(releases_root(catalog.home) / present.image.version / present.image.file_name)


def _new_bans(catalog: Catalog, entries: list[tuple[PresentImage, WithdrawalReason, str | None]],
              at: datetime) -> list[Ban]:
    """A ban per candidate and per pixel hash of (image, reason, pixel hash) `entries` not
    banned yet, each named by the first image that brought it."""
    known = load_bans(catalog)
    seen = {(CANDIDATE, v) for v in known.candidates} | {(PIXELS, v) for v in known.pixels}
    bans = []
    for present, reason, pixels in entries:
        for kind, value in ((CANDIDATE, present.image.candidate_id), (PIXELS, pixels)):
            if value is not None and (kind, value) not in seen:
                seen.add((kind, value))
                bans.append(Ban(kind=kind, value=value, reason=reason.value,
                                version=present.image.version, image_id=present.image.image_id,
                                banned_at=at))
    return bans


def refresh_releases(catalog: Catalog, versions: list[str], config: BuildConfig) -> tuple[list[str], list[str]]:
    """Rewrite what a withdrawal changed in each release folder (manifests, card);
    (refreshed versions, problems). The caller holds
    the releases lock, so files and manifests change under one hold of it."""
    from pipelines.steps.release_files import refresh_release  # pandas, the card: when needed

    refreshed, problems = [], []
    for version in versions:
        try:
            refresh_release(catalog, version, config, lock_held=True)
            refreshed.append(version)
        except (ConsentgenError, OSError) as exc:
            problems.append(f"{version}: files not refreshed ({exc})")
    return refreshed, problems


def shown_versions(outcome: TakedownOutcome) -> list[str]:
    """The versions a take-down changed whose folder is there to rewrite."""
    return [v for v in outcome.withdrawn if v not in outcome.missing_folders and v not in outcome.pending]


def withdraw_image(catalog: Catalog, image_id: str, config: BuildConfig, *,
                   note: str | None = None) -> TakedownOutcome:
    """Take one image down from every release: every present copy of the same candidate
    or the same pixels (a look-alike complaint), and ban both, even if it was withdrawn
    already. Decodes each present candidate once to compare pixels: the catalog records
    candidates, not their pixels."""
    rows = release_images_by_id(catalog, image_id)
    if not rows:
        raise ReleaseError(f"no published image {image_id!r}")
    candidates = {r.image.candidate_id for r in rows}
    pixels = {h for r in rows if (h := _pixels_of(catalog, r))}
    with releases_lock(catalog.home):
        hashed: dict[tuple[str | None, str], str | None] = {}
        targets = []
        for p in present_images(catalog, config.purpose):
            key = (p.candidate_path, p.image.candidate_id)
            if key not in hashed:
                hashed[key] = _pixels_of(catalog, p)
            if p.image.candidate_id in candidates or hashed[key] in pixels:
                targets.append(p)
        out = take_down(catalog, [Takedown(p, WithdrawalReason.IMAGE, note=note) for p in targets])
        extra = _new_bans(catalog, [(r, WithdrawalReason.IMAGE, h) for r in rows
                                    for h in (pixels or {None})], utc_now())
        catalog.add(extra)
        out.banned += len(extra)
        out.refreshed, out.problems = refresh_releases(catalog, shown_versions(out), config)
    return out


def withdrawn_ids(catalog: Catalog, version: str) -> list[str]:
    return listed_withdrawn(releases_root(catalog.home) / version)
