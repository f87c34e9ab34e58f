"""After a withdrawal no withdrawn pixel is left in the release, and the release says so.

One real tiny build; the withdrawal is made the way the reconcile makes it (image files
deleted, ids appended to WITHDRAWN, `Withdrawal` rows), then `refresh_release` rewrites
the folder. The pictures are checked by decoding them: every tile of the sample grid
(in `card/samples.png` and in every image embedded in `data_card.html`) is scaled back
down and compared with each withdrawn image's pixels.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.card import CARD_JSON, Suppressed, load_card
from pipelines.catalog import ReleaseImage, Withdrawal
from pipelines.catalog.reasons import WithdrawalReason
from pipelines.defs.runner import run_build
from pipelines.steps.release import WITHDRAWN, releases_root
from pipelines.steps.release_files import refresh_release, withdrawal_lines
from tests.pipelines.conftest import PURPOSE, Deployment

ON_REVOKE = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
ON_COMPLAINT = datetime(2026, 1, 6, 23, 59, tzinfo=UTC)
ON_EXPIRY = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)
GAP, CAPTION, TILE_MIN = 4, 16, 96  # the grid's layout (pipelines.card.plots)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def grid_tiles(png: bytes, side: int) -> list[np.ndarray]:
    """Every tile position of a sample grid, scaled back to `side` px (its first channel)."""
    scale = max(1, math.ceil(TILE_MIN / side))
    tile = side * scale
    with Image.open(io.BytesIO(png)) as im:
        arr = np.asarray(im.convert("RGB"))[..., 0]
    cols = (arr.shape[1] - GAP) // (tile + GAP)
    rows = (arr.shape[0] - GAP) // (tile + CAPTION + GAP)
    tiles = []
    for r in range(rows):
        for c in range(cols):
            x, y = GAP + c * (tile + GAP), GAP + r * (tile + CAPTION + GAP)
            block = arr[y:y + tile, x:x + tile]
            if block.shape == (tile, tile) and np.array_equal(
                    block, np.kron(block[::scale, ::scale], np.ones((scale, scale), np.uint8))):
                tiles.append(block[::scale, ::scale])  # a whole upscaled image, not white
    return [t for t in tiles if not np.all(t == 255)]


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(uri) for uri in
            re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', page)]


def shown(pictures: list[bytes], images: list[np.ndarray], side: int) -> int:
    """How many of `images` appear as a tile of any of `pictures`."""
    tiles = [t for png in pictures for t in grid_tiles(png, side)]
    return sum(any(np.array_equal(t, im) for t in tiles) for im in images)


def folder_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def withdraw(dep: Deployment, version: str, images: list[ReleaseImage],
             reason: WithdrawalReason, at: datetime) -> None:
    """What the reconcile does: delete, list in WITHDRAWN, record (then it refreshes)."""
    folder = releases_root(dep.home) / version
    for image in images:
        (folder / image.file_name).unlink()
    with open(folder / WITHDRAWN, "a", encoding="utf-8") as fh:
        fh.writelines(f"{i.image_id}\n" for i in images)
    dep.catalog.add([Withdrawal(version=version, image_id=i.image_id, subject_id=None,
                                event_seq=None, revoked_recorded_at=None, withdrawn_at=at,
                                latency_s=None, reason=reason.value) for i in images])


def both_files(folder: Path) -> tuple[str, str]:
    return (folder / "data_card.md").read_text(), (folder / "data_card.html").read_text()


@pytest.mark.slow
def test_withdrawn_images_leave_every_file_of_the_release(deployment: Deployment) -> None:
    dep = deployment
    for subject in dep.subjects[1:]:  # subjects[0] is never asked
        dep.ledger.grant(subject, PURPOSE)
    dep.ledger.revoke(dep.subjects[1], PURPOSE)  # and subjects[1] revokes before the build
    built = run_build(dep.home, dep.config, instance=dep.instance)
    assert built.success and built.version == "v0001", built.failure
    folder = releases_root(dep.home) / "v0001"
    side = dep.config.generator.image_size
    k = dep.config.min_public_count

    # publish saved the card's model: no identifier, small counts of people suppressed
    saved = json.loads((folder / CARD_JSON).read_text())
    assert not any(s in (folder / CARD_JSON).read_text() for s in dep.subjects)
    assert saved["expiry_policy"] == dep.config.expiry_policy == "withdraw"
    assert saved["counts"]["excluded_by_reason"]["NoConsentRecord"] == {"under": k}
    assert saved["counts"]["excluded_by_reason"]["ConsentWithdrawn"] == {"under": k}
    assert saved["counts"]["excluded_by_reason"]["ConsentExpired"] == {"under": k}  # zero too
    md, page = both_files(folder)
    for text in (md, page):
        assert f"NoConsentRecord: &lt; {k}" in text or f"NoConsentRecord: < {k}" in text
        assert "Expiry policy" in text and "No image has been withdrawn" in text

    # nothing withdrawn yet: a refresh changes no file
    before = folder_state(folder)
    refresh_release(dep.catalog, "v0001", dep.config)
    assert folder_state(folder) == before
    aside = dep.home.parent / "v0001-as-published"
    shutil.copytree(folder, aside)

    images = dep.catalog.select(ReleaseImage, "WHERE version = 'v0001' ORDER BY image_id")
    revoked_model = images[0].model_version  # a subject of this shard revokes: all its images
    by_revoke = [i for i in images if i.model_version == revoked_model]
    complaint = [i for i in images if i.model_version != revoked_model][:1]
    gone = by_revoke + complaint
    gone_pixels = [pixels(folder / i.file_name) for i in gone]
    # the comparison finds them where they are: the grid as published shows them all
    assert shown([(folder / "card" / "samples.png").read_bytes()], gone_pixels, side) == len(gone)
    assert shown(embedded_pngs(page), gone_pixels, side) == len(gone)

    withdraw(dep, "v0001", by_revoke, WithdrawalReason.WITHDRAWN, ON_REVOKE)
    withdraw(dep, "v0001", complaint, WithdrawalReason.IMAGE, ON_COMPLAINT)
    refresh_release(dep.catalog, "v0001", dep.config)

    left = [i for i in images if i not in gone]
    left_pixels = [pixels(folder / i.file_name) for i in left]
    md, page = both_files(folder)
    grid = (folder / "card" / "samples.png").read_bytes()
    assert shown([grid], gone_pixels, side) == 0
    assert shown(embedded_pngs(page), gone_pixels, side) == 0
    assert shown([grid], left_pixels, side) == len(left)  # redrawn from what is still there
    assert len(grid_tiles(grid, side)) == len(left)
    on_disk = {p.read_bytes() for p in (folder / "card").glob("*.png")}
    assert set(embedded_pngs(page)) <= on_disk and grid in embedded_pngs(page)
    assert all((folder / link).is_file() for link in re.findall(r"\]\((card/[^)]+)\)", md))

    # the manifests and the audit table lose the rows, still load, WITHDRAWN keeps the ids
    ids = sorted(i.image_id for i in left)
    csv_rows = pd.read_csv(folder / "manifest.csv", dtype={"image_id": str})
    parquet_rows = pq.read_table(folder / "manifest.parquet").to_pandas()
    audit = pd.read_csv(folder / "audit.csv", dtype={"image_id": str})
    for table in (csv_rows, parquet_rows, audit):
        assert sorted(table["image_id"]) == ids
    assert list(parquet_rows.columns) == list(pd.read_csv(aside / "manifest.csv").columns)
    assert sorted((folder / WITHDRAWN).read_text().split()) == sorted(i.image_id for i in gone)
    assert all((folder / f).is_file() for f in csv_rows["file_name"])

    # counts, distances and the "Withdrawn:" lines
    card = load_card(folder)
    per_label = csv_rows["label_name"].value_counts().to_dict()
    assert {k_: v for k_, v in card.counts.published_per_label.items() if v} == per_label
    assert card.counts.published_total == len(left)
    assert sorted(card.distances["pixel_l2"].values) == sorted(csv_rows["pixel_l2"])
    assert card.counts.eligible_subjects == load_card(aside).counts.eligible_subjects
    for text in (md, page.replace("&lt;", "<")):
        assert re.search(rf"Published images(</td><td>| \| ){len(left)}(</td>| \|)", text)
        assert f"Withdrawn: < {k} images on 2026-01-05 (ConsentWithdrawn)" in text
        assert f"Withdrawn: < {k} images on 2026-01-06 (ImageWithdrawn)" in text
        assert "No image has been withdrawn" not in text
    assert not any(s in page or s in md for s in dep.subjects)

    # a second call changes nothing
    after = folder_state(folder)
    refresh_release(dep.catalog, "v0001", dep.config)
    assert folder_state(folder) == after

    # a release without card.json (published before cards were saved) cannot be redrawn:
    # its sample grid goes, and its tables still lose the rows listed in WITHDRAWN
    old = releases_root(dep.home) / "v0002"
    shutil.copytree(aside, old)
    (old / CARD_JSON).unlink()
    for image in gone:
        (old / image.file_name).unlink()
    (old / WITHDRAWN).write_text("".join(f"{i.image_id}\n" for i in gone))
    refresh_release(dep.catalog, "v0002", dep.config)
    assert not (old / "card" / "samples.png").exists()
    old_md, old_page = both_files(old)
    assert shown(embedded_pngs(old_page), gone_pixels, side) == 0
    assert "samples.png" not in old_md and "removed after a withdrawal" in old_md
    assert sorted(pd.read_csv(old / "manifest.csv", dtype={"image_id": str})["image_id"]) == ids

    # every image withdrawn: no grid, a note instead, nothing published
    withdraw(dep, "v0001", left, WithdrawalReason.EXPIRED, ON_EXPIRY)
    refresh_release(dep.catalog, "v0001", dep.config)
    md, page = both_files(folder)
    assert not (folder / "card" / "samples.png").exists()
    assert shown(embedded_pngs(page), gone_pixels + left_pixels, side) == 0
    assert len(embedded_pngs(page)) == len(load_card(folder).distances)  # histograms only
    for text in (md, page):
        assert "No image of this release is still published" in text
        assert "Withdrawn: < 10 images on 2026-02-01 (ConsentExpired)" in text.replace("&lt;", "<")
    assert load_card(folder).counts.published_total == 0
    assert pd.read_csv(folder / "manifest.csv").empty
    assert pq.read_table(folder / "manifest.parquet").num_rows == 0


def test_a_missing_release_folder_is_nothing_to_rewrite(home: Path) -> None:
    from pipelines.catalog import Catalog
    from pipelines.settings import quick_profile

    catalog = Catalog(home)
    catalog.ensure_schema()
    refresh_release(catalog, "v0007", quick_profile())
    refresh_release(catalog, "v0007", quick_profile(), lock_held=True)
    assert not (releases_root(home) / "v0007").exists()


def _row(image_id: str, at: datetime, reason: str | None) -> Withdrawal:
    return Withdrawal(version="v0001", image_id=image_id, subject_id=None, event_seq=None,
                      revoked_recorded_at=None, withdrawn_at=at, latency_s=None, reason=reason)


def test_withdrawal_lines_group_by_day_and_reason_and_suppress_small_n() -> None:
    late_evening = datetime(2026, 1, 5, 23, 30, tzinfo=UTC)
    rows = ([_row(f"a{i}", ON_REVOKE, "ConsentWithdrawn") for i in range(12)]
            + [_row("b", late_evening, "ConsentWithdrawn"), _row("c", ON_COMPLAINT, "ImageWithdrawn"),
               _row("d", ON_COMPLAINT, None)])
    lines = withdrawal_lines(rows, 10)
    assert [(w.on.isoformat(), w.reason, w.images) for w in lines] == [
        ("2026-01-05", WithdrawalReason.WITHDRAWN, 13),
        ("2026-01-06", None, Suppressed(under=10)),
        ("2026-01-06", WithdrawalReason.IMAGE, Suppressed(under=10)),
    ]
    assert [w.images for w in withdrawal_lines(rows, 1)] == [13, 1, 1]
