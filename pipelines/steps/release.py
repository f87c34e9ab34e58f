"""Publishing a release atomically, and reading what was published.

A release is written into a hidden temporary folder beside the others, every file
fsynced, then renamed into place in one step; `LATEST` is replaced the same way. The
order is what makes a revocation at any moment honoured:

1. the release's rows are recorded as `pending` first, so a reconcile from then on sees
   its images (and withdraws them, or names them as pending);
2. the files are written and fsynced in the temporary folder (minutes, with the card);
3. holding `releases_lock` (which every withdrawal holds too): the last consent read, a
   fresh ledger read — if any image stands on a subject not eligible now, or was
   withdrawn while pending, the publish is refused — then the rename, the status
   `published`, and `LATEST`.

So a version never becomes visible with an image whose subject was ineligible at the
rename. An exception undoes everything (no folder, no rows). A kill leaves what the
sweep (`pipelines.steps.sweep`) finishes or removes: a pending release whose folder is in
place is completed, one whose folder never appeared is forgotten, temporary folders go.
The crash points (`consentgen.crash`) name each gap between these moves.

Publish's callers hold the home's build lock (`run_build`, or each asset body through
`build_step_lock`), so no sweep runs while a publish writes.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from consent import Ledger
from consent.events import utc_now
from consentgen.crash import crashpoint
from consentgen.errors import ConsentgenError, ReleaseError
from consentgen.files import atomic_output, discard_tree, fsync_dir, fsync_tree
from consentgen.home import RELEASES_DIR
from pipelines.catalog import Candidate, Catalog, Release, ReleaseImage, Snapshot
from pipelines.catalog.lineage import (
    banned_values,
    final_audit_rows,
    kept_candidates,
    releases,
    unconsented_lineage,
    withdrawn_from,
    withdrawn_per_version,
)
from pipelines.steps.locks import releases_lock
from pipelines.steps.public_manifest import (
    MANIFEST_COLUMNS,
    StagedImage,
    manifest_frame,
    public_audit_frame,
    stage,
)
from pipelines.settings import BuildConfig
from pipelines.steps.provenance import ReleaseStamp, stamp_release

LATEST = "LATEST"
WITHDRAWN = "WITHDRAWN"
MANIFEST_CSV = "manifest.csv"
TEMP_PREFIX = ".tmp-"
PENDING, PUBLISHED = "pending", "published"
_VERSION = re.compile(r"^v(\d{4,})$")


def releases_root(home: Path) -> Path:
    return home / RELEASES_DIR


def is_version_name(name: str) -> bool:
    return _VERSION.match(name) is not None


def next_version(catalog: Catalog) -> str:
    root = releases_root(catalog.home)
    numbers = [int(m.group(1)) for p in (root.iterdir() if root.exists() else [])
               if (m := _VERSION.match(p.name))]
    numbers += [int(r.version[1:]) for r in catalog.select(Release, "", [])]
    return f"v{max(numbers, default=0) + 1:04d}"


def listed_withdrawn(folder: Path) -> list[str]:
    """The image ids a release folder's `WITHDRAWN` lists (none when it is missing)."""
    path = folder / WITHDRAWN
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def latest_version(home: Path) -> str | None:
    marker = releases_root(home) / LATEST
    return marker.read_text().strip() or None if marker.exists() else None


def is_complete(folder: Path) -> bool:
    """A release folder renamed into place by a publish (its manifest is written before the
    rename); a folder that only holds, say, a WITHDRAWN list is not one."""
    return (folder / MANIFEST_CSV).is_file()


def write_latest(home: Path, version: str | None) -> None:
    """Point `LATEST` at `version` atomically (None: remove it, no release is complete)."""
    marker = releases_root(home) / LATEST
    if version is None:
        marker.unlink(missing_ok=True)
        return
    with atomic_output(marker) as fh:
        fh.write(version + "\n")
        crashpoint("latest.writing")


def mark_published(catalog: Catalog, version: str) -> None:
    with catalog.write() as con:
        con.execute("UPDATE releases SET status = ? WHERE version = ?", [PUBLISHED, version])


def forget_release(catalog: Catalog, version: str) -> None:
    """Forget a release that never became visible: its rows, and any withdrawal a reconcile
    recorded against it while it was pending (the version number is free again)."""
    with catalog.write() as con:
        for table in ("withdrawals", "release_images", "releases"):
            con.execute(f"DELETE FROM {table} WHERE version = ?", [version])


def publish_release(
    catalog: Catalog,
    ledger: Ledger,
    snapshot: Snapshot,
    config: BuildConfig,
    *,
    render_card: Any = None,
    inputs_digest: str | None = None,
) -> Release:
    """Publish the build's audited candidates as the next version (see the module's docstring).

    `render_card(staging_dir, version, manifest_frame, staged_images, stamp_info)` writes the data card and
    the expectations' offline validation pages into the staging folder (the Dagster layer passes the
    full renderer; tests of publishing alone may pass None).
    """
    candidates = kept_candidates(catalog, snapshot.snapshot_id)
    if not candidates:
        raise ReleaseError(f"build {snapshot.snapshot_id} has no audited candidates to publish")
    _refuse_unconsented(catalog, ledger, snapshot, candidates, when="before writing it")
    staged = stage(candidates, final_audit_rows(catalog, snapshot.snapshot_id))
    version = next_version(catalog)
    root = releases_root(catalog.home)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{TEMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    final = root / version
    release = Release(version=version, snapshot_id=snapshot.snapshot_id, head_seq=snapshot.head_seq,
                      head_hash=snapshot.head_hash, n_images=len(staged),
                      release_path=f"{RELEASES_DIR}/{version}", created_at=utc_now(), status=PENDING,
                      inputs_digest=inputs_digest)  # `pipelines.steps.freshness`
    images = [ReleaseImage(version=version, image_id=s.image_id, candidate_id=s.candidate.candidate_id,
                           label=s.candidate.label, shard=s.candidate.shard,
                           model_version=s.candidate.model_version, file_name=s.file_name(config))
              for s in staged]
    catalog.add([release], images)  # pending: from here on a reconcile sees these images
    crashpoint("publish.rows_recorded")
    try:
        with ReleaseStamp(catalog.home, config, version, snapshot.head_hash) as stamp:
            _write_staging(catalog, tmp, version, staged, config, render_card, stamp)
        with releases_lock(catalog.home):
            crashpoint("publish.locked")
            _refuse_unconsented(catalog, ledger, snapshot, candidates, when="at the rename",
                                version=version)
            crashpoint("publish.consent_read")
            os.rename(tmp, final)
            crashpoint("publish.renamed")
            fsync_dir(root)
            crashpoint("publish.before_status")
            mark_published(catalog, version)
            crashpoint("publish.before_latest")
            write_latest(catalog.home, version)
            crashpoint("publish.latest_written")
    except BaseException as exc:
        if latest_version(catalog.home) == version:
            raise  # visible, recorded and named: nothing left to undo
        _abandon(catalog, version, tmp, final)
        if isinstance(exc, ConsentgenError):
            raise
        if isinstance(exc, OSError):
            raise ReleaseError(f"publishing {version} failed, nothing published: {exc}") from exc
        raise
    return release.model_copy(update={"status": PUBLISHED})


def _write_staging(catalog: Catalog, tmp: Path, version: str, staged: list[StagedImage],
                   config: BuildConfig, render_card: Any, stamp: ReleaseStamp) -> None:
    staged = stamp_release(catalog, config, stamp, staged, tmp)  # watermark, XMP, C2PA; checked
    manifest = manifest_frame(staged, config)
    crashpoint("publish.files_copied")
    table = pa.Table.from_pandas(manifest[MANIFEST_COLUMNS], preserve_index=False)
    pq.write_table(table, tmp / "manifest.parquet")
    manifest.to_csv(tmp / MANIFEST_CSV, index=False)
    public_audit_frame(staged).to_csv(tmp / "audit.csv", index=False)
    (tmp / WITHDRAWN).write_text("")
    crashpoint("publish.manifests_written")
    if render_card is not None:
        render_card(tmp, version, manifest, staged, stamp.info)
    crashpoint("publish.card_rendered")
    fsync_tree(tmp)
    crashpoint("publish.fsynced")


def _refuse_unconsented(catalog: Catalog, ledger: Ledger, snapshot: Snapshot,
                        candidates: list[Candidate], *, when: str, version: str | None = None) -> None:
    """Refuse the publish, rather than drop the images, when a fresh ledger read finds an
    image whose subject is not eligible now, or (for a pending `version`) an image a
    reconcile withdrew or banned meanwhile.

    Dropping them at the rename would mean rewriting the manifests and redrawing the card
    while holding the lock every withdrawal waits for; refusing is fail-closed, and the
    reconcile names the shards to rebuild, whose next build publishes without them.
    """
    tainted = unconsented_lineage(catalog, ledger, snapshot.purpose, candidates)
    if tainted:
        unknown = sum(1 for subjects in tainted.values() if not subjects)
        raise ReleaseError(
            f"{len(tainted)} image(s) stand on subjects whose consent no longer holds "
            f"(fresh ledger read {when}"
            + (f"; {unknown} from a model without lineage rows" if unknown else "")
            + "); not publishing (the reconcile names their shards for a rebuild)")
    if version is None:
        return
    withdrawn = withdrawn_from(catalog, version)
    banned = banned_values(catalog)[0] & {c.candidate_id for c in candidates}
    if withdrawn or banned:
        raise ReleaseError(
            f"{len(withdrawn)} image(s) of {version} were withdrawn and {len(banned)} banned "
            "while it was being published; not publishing (the next build leaves them out)")


def _abandon(catalog: Catalog, version: str, tmp: Path, final: Path) -> None:
    """Undo a publish that raised: the folder leaves view first, then the rows go (if the
    catalog refuses now, the pending rows without a folder are the sweep's to forget)."""
    shutil.rmtree(tmp, ignore_errors=True)
    if final.exists():
        discard_tree(final)
    try:
        forget_release(catalog, version)
    except ConsentgenError:
        pass


def publish(catalog: Catalog, ledger: Ledger, snapshot: Snapshot, config: BuildConfig, *,
            inputs_digest: str | None = None) -> Release:
    """Publish with the data card and the expectations' validation pages inside the release."""
    from pipelines.steps.card import card_renderer  # the card pulls in figures (torch): only at publish

    return publish_release(catalog, ledger, snapshot, config,
                           render_card=card_renderer(catalog, ledger, snapshot, config),
                           inputs_digest=inputs_digest)


def list_releases(catalog: Catalog) -> list[dict[str, Any]]:
    withdrawn = withdrawn_per_version(catalog)
    return [
        {**r.model_dump(), "withdrawn": withdrawn.get(r.version, 0),
         "latest": r.version == latest_version(catalog.home)}
        for r in releases(catalog)
    ]
