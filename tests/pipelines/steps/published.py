"""Published releases made of real catalog rows and real PNG files, without training.

Two shard models (m0 saw subjects A, B, C; m1 saw D, E, F), four candidates each, and
two releases (v0001, v0002) that both hold every candidate under new image ids: enough
for the reconcile's own rules, in milliseconds. The scenarios that need real models are
in test_reconcile.py's slow tests.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from tests.pipelines.conftest import Deployment

from consent import Ledger
from pipelines.catalog import (
    Candidate,
    Catalog,
    EligibleRecord,
    ModelRecord,
    Release,
    ReleaseImage,
    ShardModel,
    Snapshot,
)
from pipelines.defs.runner import BuildReport, run_build
from pipelines.steps.bans import file_pixel_hash
from pipelines.steps.images import write_png
from pipelines.steps.release import WITHDRAWN, releases_root

PURPOSE = "synthetic-training"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SUBJECTS = {"m0": ("A", "B", "C"), "m1": ("D", "E", "F")}
VERSIONS = ("v0001", "v0002")


@dataclass
class Published:
    home: Path
    catalog: Catalog
    ledger: Ledger
    images: list[ReleaseImage]

    def of_model(self, model_version: str, version: str | None = None) -> list[ReleaseImage]:
        return [i for i in self.images if i.model_version == model_version
                and (version is None or i.version == version)]

    def folder(self, version: str) -> Path:
        return releases_root(self.home) / version


def publish_rows(home: Path, *, expires_at: datetime | None = None) -> Published:
    ledger = Ledger.at_home(home)
    ledger.init()
    for subjects in SUBJECTS.values():
        for s in subjects:
            ledger.grant(s, PURPOSE, effective_at=T0, expires_at=expires_at)
    catalog = Catalog(home)
    rng = np.random.default_rng(0)
    snapshot = Snapshot(snapshot_id="snap-1", purpose=PURPOSE, head_seq=6, head_hash="h",
                        taken_at=T0 + timedelta(hours=1))
    models, records, eligible, candidates = [], [], [], []
    for shard, (version, subjects) in enumerate(SUBJECTS.items()):
        models.append(ShardModel(model_version=version, shard=shard, snapshot_id="snap-1",
                                 fingerprint=f"fp-{version}", n_records=len(subjects),
                                 model_path=f"models/{shard}/{version}", epsilon=None,
                                 final_loss=None, trained_at=T0 + timedelta(hours=1)))
        records += [ModelRecord(model_version=version, record_id=f"r-{s}", subject_id=s)
                    for s in subjects]
        eligible += [EligibleRecord(snapshot_id="snap-1", record_id=f"r-{s}", subject_id=s, label="0",
                                    shard=shard, role="train") for s in subjects]
        for k in range(4):
            cid = f"c{shard}{k}"
            write_png(rng.integers(0, 256, (16, 16), dtype=np.uint8), home / f"candidates/{cid}.png")
            candidates.append(Candidate(candidate_id=cid, snapshot_id="snap-1", shard=shard,
                                        model_version=version, label=str(k % 2), seed=1,
                                        image_path=f"candidates/{cid}.png", created_at=T0))
    releases, images = [], []
    for version in VERSIONS:
        folder = releases_root(home) / version
        for c in candidates:
            image = ReleaseImage(version=version, image_id=uuid.uuid4().hex, candidate_id=c.candidate_id,
                                 label=c.label, shard=c.shard, model_version=c.model_version,
                                 file_name=f"images/l{c.label}/{c.candidate_id}.png")
            (folder / image.file_name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(home / c.image_path, folder / image.file_name)
            images.append(image)
        (folder / WITHDRAWN).write_text("")
        releases.append(Release(version=version, snapshot_id="snap-1", head_seq=6, head_hash="h",
                                n_images=len(candidates), release_path=f"releases/{version}",
                                created_at=T0 + timedelta(hours=2)))
    catalog.add([snapshot], models, records, eligible, candidates, releases, images)
    return Published(home, catalog, ledger, images)


def release_pixels(home: Path, version: str) -> set[str]:
    """The pixel hashes of every image file in a release folder."""
    return {file_pixel_hash(p) for p in (releases_root(home) / version).glob("images/*/*.png")}


def first_build(dep: Deployment) -> BuildReport:
    """Every subject granted, then a real tiny build (v0001)."""
    for subject in dep.subjects:
        dep.ledger.grant(subject, PURPOSE)
    report = run_build(dep.home, dep.config, instance=dep.instance)
    assert report.success and report.version == "v0001", report.failure
    return report
