"""Publishing's stamp at a size that carries the watermark: marked files are audited again
as written, and one the mark leaves flagged ships as the audited candidate, unmarked.

Real sources (Br35H slices ingested at 64 px), a real audit index, real signing; the
candidates are written here: DDPM-like noise (clean) and an exact copy of a source, the
one thing the second audit must catch whatever the mark does to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.catalog import AuditRow, Candidate, Catalog
from pipelines.settings import GeneratorSettings, quick_profile
from pipelines.steps.provenance import ReleaseStamp, stamp_release
from pipelines.steps.public_manifest import StagedImage
from tests.pipelines.conftest import ingest_subjects, pick_subjects
from validation.release.metadata import find_identifying_metadata
from validation.release.watermark import MIN_WATERMARK_SIZE, read_watermark

SIZE = MIN_WATERMARK_SIZE


def staged_image(home: Path, name: str, pixels: np.ndarray) -> StagedImage:
    path = home / "candidates" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    candidate = Candidate(candidate_id=name, snapshot_id="s", shard=0, model_version="m",
                          label="0", seed=0, image_path=f"candidates/{name}.png",
                          created_at=datetime.now(UTC))
    audit = AuditRow(snapshot_id="s", candidate_id=name, round=0, phash_distance=64,
                     pixel_l2=9.0, patch_l2=9.0, embedding_cosine=0.0, nearest_phash=None,
                     nearest_pixel=None, nearest_patch=None, nearest_embedding=None,
                     flagged=False, kept=True)
    return StagedImage(image_id=f"img-{name}", candidate=candidate, audit=audit)


@pytest.fixture(scope="module")
def sources_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("stamp") / "home"
    home.mkdir()
    ingest_subjects(home, pick_subjects(2))
    return home


def test_marked_files_are_audited_again_and_a_flagged_one_ships_unmarked(
        sources_home: Path, tmp_path: Path) -> None:
    catalog = Catalog(sources_home)
    config = quick_profile(generator=GeneratorSettings(preset="tiny", image_size=SIZE))
    rng = np.random.default_rng(0)
    noise = [(rng.random((SIZE, SIZE)) * 255).astype(np.uint8) for _ in range(3)]
    source = catalog.sources()[0]
    copy = np.asarray(Image.open(sources_home / source.image_path).convert("L"))
    staged = [staged_image(sources_home, f"noise{i}", n) for i, n in enumerate(noise)]
    staged.append(staged_image(sources_home, "copy", copy))
    with ReleaseStamp(sources_home, config, "v0007", "ab" * 32) as stamp:
        assert stamp.watermark
        shipped = stamp_release(catalog, config, stamp, staged, tmp_path)
        info = stamp.info
    assert [s.image_id for s in shipped] == [s.image_id for s in staged]
    assert info.unmarked == 1 and stamp.unmarked == 1

    by_id = {s.image_id: s for s in shipped}
    copied = tmp_path / by_id["img-copy"].file_name(config)
    assert np.array_equal(np.asarray(Image.open(copied)), copy)  # as audited: unmarked
    assert by_id["img-copy"].audit == staged[-1].audit
    assert not read_watermark(Image.open(copied)).found
    for s in shipped[:3]:
        path = tmp_path / s.file_name(config)
        reading = read_watermark(Image.open(path))
        assert reading.found and reading.release == "v0007"
        assert s.audit != staged[0].audit and not s.audit.flagged
        assert s.audit.nearest_pixel in {x.record_id for x in catalog.sources()}
    for s in shipped:
        assert find_identifying_metadata(tmp_path / s.file_name(config),
                                         provenance=stamp.expected) == []


def test_below_the_size_nothing_is_marked_or_audited_again(sources_home: Path,
                                                            tmp_path: Path) -> None:
    catalog = Catalog(sources_home)
    config = quick_profile(generator=GeneratorSettings(preset="tiny", image_size=32))
    staged = [staged_image(sources_home, "small", np.full((32, 32), 90, np.uint8))]
    with ReleaseStamp(sources_home, config, "v0008", "cd" * 32) as stamp:
        shipped = stamp_release(catalog, config, stamp, staged, tmp_path)
        assert not stamp.watermark and "below 64 px" in stamp.info.watermark_note
    assert shipped == staged
    written = np.asarray(Image.open(tmp_path / staged[0].file_name(config)))
    assert np.array_equal(written, np.full((32, 32), 90, np.uint8))
