"""Publishing a release atomically, and reading what was published.

A release is written into a hidden temporary folder beside the others, every file
fsynced, then renamed into place in one step; `LATEST` is replaced the same way. The
catalog learns about the release's images before it becomes visible, so a revocation
that arrives at any moment can find them. Any failure removes the temporary folder and
the catalog rows: a release is either fully published or not there.
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
from consentgen.errors import ConsentgenError, ReleaseError
from consentgen.files import atomic_output, fsync_dir
from pipelines.catalog import Catalog, Release, ReleaseImage, Snapshot
from pipelines.catalog.lineage import (
    final_audit_rows,
    kept_candidates,
    releases,
    unconsented_lineage,
    withdrawn_per_version,
)
from pipelines.steps.public_manifest import (
    MANIFEST_COLUMNS,
    manifest_frame,
    public_audit_frame,
    stage,
)
from pipelines.settings import BuildConfig
from validation.release.metadata import find_identifying_metadata

RELEASES_DIR = "releases"
LATEST = "LATEST"
WITHDRAWN = "WITHDRAWN"
_VERSION = re.compile(r"^v(\d{4,})$")


def releases_root(home: Path) -> Path:
    return home / RELEASES_DIR


def next_version(catalog: Catalog) -> str:
    root = releases_root(catalog.home)
    numbers = [int(m.group(1)) for p in (root.iterdir() if root.exists() else [])
               if (m := _VERSION.match(p.name))]
    numbers += [int(r.version[1:]) for r in catalog.select(Release, "", [])]
    return f"v{max(numbers, default=0) + 1:04d}"


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(folder))


def latest_version(home: Path) -> str | None:
    marker = releases_root(home) / LATEST
    return marker.read_text().strip() or None if marker.exists() else None


def publish_release(
    catalog: Catalog,
    ledger: Ledger,
    snapshot: Snapshot,
    config: BuildConfig,
    *,
    render_card: Any = None,
) -> Release:
    """Publish the build's audited candidates as the next version.

    `render_card(staging_dir, version, manifest_frame, staged_images)` writes the data card and
    the expectations' Data Docs into the staging folder (the Dagster layer passes the
    full renderer; tests of publishing alone may pass None).
    """
    candidates = kept_candidates(catalog, snapshot.snapshot_id)
    if not candidates:
        raise ReleaseError(f"build {snapshot.snapshot_id} has no audited candidates to publish")
    tainted = unconsented_lineage(catalog, ledger, snapshot.purpose, candidates)
    if tainted:
        raise ReleaseError(
            f"{len(tainted)} image(s) stand on subjects whose consent no longer holds; "
            "not publishing (the revocation sensor will rebuild their shards)"
        )
    staged = stage(candidates, final_audit_rows(catalog, snapshot.snapshot_id))
    version = next_version(catalog)
    root = releases_root(catalog.home)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    final = root / version
    release = Release(version=version, snapshot_id=snapshot.snapshot_id, head_seq=snapshot.head_seq,
                      head_hash=snapshot.head_hash, n_images=len(staged),
                      release_path=f"{RELEASES_DIR}/{version}", created_at=utc_now())
    images = [ReleaseImage(version=version, image_id=s.image_id, candidate_id=s.candidate.candidate_id,
                           label=s.candidate.label, shard=s.candidate.shard,
                           model_version=s.candidate.model_version, file_name=s.file_name(config))
              for s in staged]
    recorded = False
    try:
        manifest = manifest_frame(staged, config)
        for s in staged:
            target = tmp / s.file_name(config)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(catalog.home / s.candidate.image_path, target)
            findings = find_identifying_metadata(target)
            if findings:
                raise ReleaseError(f"{target.name}: identifying metadata {findings[0].kind} found")
        table = pa.Table.from_pandas(manifest[MANIFEST_COLUMNS], preserve_index=False)
        pq.write_table(table, tmp / "manifest.parquet")
        manifest.to_csv(tmp / "manifest.csv", index=False)
        public_audit_frame(staged).to_csv(tmp / "audit.csv", index=False)
        (tmp / WITHDRAWN).write_text("")
        if render_card is not None:
            render_card(tmp, version, manifest, staged)
        _fsync_tree(tmp)
        catalog.add([release], images)
        recorded = True
        os.rename(tmp, final)
        fsync_dir(root)
        with atomic_output(root / LATEST) as fh:
            fh.write(version + "\n")
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if final.exists() and latest_version(catalog.home) != version:
            shutil.rmtree(final, ignore_errors=True)
        if recorded:
            catalog.delete_release(version)
        if isinstance(exc, ConsentgenError):
            raise
        if isinstance(exc, OSError):
            raise ReleaseError(f"publishing {version} failed, nothing published: {exc}") from exc
        raise
    return release


def publish(catalog: Catalog, ledger: Ledger, snapshot: Snapshot, config: BuildConfig) -> Release:
    """Publish with the data card and the expectations' Data Docs inside the release."""
    from pipelines.steps.card import card_renderer  # the card pulls in figures (torch): only at publish

    return publish_release(catalog, ledger, snapshot, config,
                           render_card=card_renderer(catalog, ledger, snapshot, config))


def list_releases(catalog: Catalog) -> list[dict[str, Any]]:
    withdrawn = withdrawn_per_version(catalog)
    return [
        {**r.model_dump(), "withdrawn": withdrawn.get(r.version, 0),
         "latest": r.version == latest_version(catalog.home)}
        for r in releases(catalog)
    ]
