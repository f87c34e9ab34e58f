"""The inputs digest: what an unchanged rebuild compares, on a real ledger and catalog."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from consent import Ledger
from consent.events import utc_now
from consent.rows import Head
from pipelines.catalog import Ban, Catalog, Snapshot
from pipelines.settings import quick_profile
from pipelines.steps.freshness import inputs_digest, snapshot_digest, unchanged_since
from pipelines.demo.sources import demo_slices
from pipelines.steps.ingest import ingest
from tests.pipelines.conftest import PURPOSE, ingest_subjects, pick_subjects
from tests.pipelines.steps.published import publish_rows


def ingest_more(home: Path, subjects: list[str]) -> None:
    """A second ingest, of these subjects' slices, from a folder of its own."""
    incoming = home.parent / "more"
    rows = ["path,subject_id,label,record_id"]
    for s in demo_slices():
        if s.subject_id in subjects:
            (incoming / s.relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s.path, incoming / s.relpath)
            rows.append(f"{s.relpath},{s.subject_id},{s.label},{s.record_id}")
    (home.parent / "more.csv").write_text("\n".join(rows) + "\n")
    assert ingest(incoming, manifest=home.parent / "more.csv", home=home).accepted > 0


@pytest.fixture
def sourced(home: Path) -> tuple[Catalog, Ledger, list[str]]:
    """Two subjects' real slices ingested, both granted."""
    subjects = pick_subjects(1)
    ingest_subjects(home, subjects)
    ledger = Ledger.at_home(home)
    ledger.init()
    for s in subjects:
        ledger.grant(s, PURPOSE)
    return Catalog(home), ledger, subjects


def test_the_same_inputs_give_the_same_digest_and_any_change_another(sourced) -> None:
    catalog, ledger, subjects = sourced
    config = quick_profile()
    first = inputs_digest(catalog, ledger, config)
    assert inputs_digest(catalog, ledger, config) == first
    assert inputs_digest(catalog, ledger, quick_profile(images_per_shard=9)) != first

    ledger.revoke(subjects[0], PURPOSE)
    revoked = inputs_digest(catalog, ledger, config)
    assert revoked != first
    ledger.grant(subjects[0], PURPOSE)  # the same eligible set again, but a new head
    assert inputs_digest(catalog, ledger, config) not in {first, revoked}

    before_ban = inputs_digest(catalog, ledger, config)
    catalog.add([Ban(kind="pixels", value="ab" * 32, reason="test", version=None, image_id=None,
                     banned_at=utc_now())])
    assert inputs_digest(catalog, ledger, config) != before_ban


def test_an_expiry_that_passed_is_a_change_though_the_head_did_not_move(home: Path) -> None:
    subjects = pick_subjects(1)
    ingest_subjects(home, subjects)
    ledger = Ledger.at_home(home)
    ledger.init()
    ends = utc_now() + timedelta(days=30)
    for s in subjects:
        ledger.grant(s, PURPOSE, expires_at=ends if s == subjects[0] else None)
    catalog, config, head = Catalog(home), quick_profile(), ledger.head()
    before = inputs_digest(catalog, ledger, config, head=head, at=ends - timedelta(hours=1))
    assert inputs_digest(catalog, ledger, config, head=head, at=ends - timedelta(minutes=5)) == before
    assert inputs_digest(catalog, ledger, config, head=head, at=ends + timedelta(hours=1)) != before


def test_a_snapshot_digest_leaves_out_sources_ingested_after_it(home: Path) -> None:
    """A build bound to a snapshot records a digest without later sources, so the next
    build sees them as a change (never the other way round)."""
    subjects = pick_subjects(2)
    ledger = Ledger.at_home(home)
    ledger.init()
    for s in subjects:
        ledger.grant(s, PURPOSE)
    head = ledger.head()
    catalog, config = Catalog(home), quick_profile()
    ingest_subjects(home, subjects[:2])
    snapshot = Snapshot(snapshot_id="s1", purpose=PURPOSE, head_seq=head.seq, head_hash=head.hash,
                        taken_at=utc_now())
    at_snapshot = snapshot_digest(catalog, ledger, snapshot, config)
    assert at_snapshot == inputs_digest(catalog, ledger, config, head=Head(head.seq, head.hash),
                                        at=snapshot.taken_at)
    assert inputs_digest(catalog, ledger, config) == at_snapshot  # nothing new yet

    ingest_more(home, subjects[2:])
    assert snapshot_digest(catalog, ledger, snapshot, config) == at_snapshot
    assert inputs_digest(catalog, ledger, config) != at_snapshot


def test_unchanged_since_names_the_newest_published_release_with_the_same_digest(home: Path) -> None:
    pub = publish_rows(home)
    config = quick_profile()
    assert unchanged_since(pub.catalog, pub.ledger, config) is None  # releases without a digest
    digest = inputs_digest(pub.catalog, pub.ledger, config)
    with pub.catalog.write() as con:
        con.execute("UPDATE releases SET inputs_digest = ? WHERE version = 'v0001'", [digest])
    assert unchanged_since(pub.catalog, pub.ledger, config) is None  # v0002 is the newest
    with pub.catalog.write() as con:
        con.execute("UPDATE releases SET inputs_digest = ? WHERE version = 'v0002'", [digest])
    assert unchanged_since(pub.catalog, pub.ledger, config) == "v0002"
    assert unchanged_since(pub.catalog, pub.ledger, quick_profile(seed=1)) is None
    pub.ledger.revoke("A", PURPOSE)
    assert unchanged_since(pub.catalog, pub.ledger, config) is None


def test_new_img2img_weights_in_the_same_folder_are_a_change(sourced, tmp_path: Path) -> None:
    from pipelines.settings import GeneratorSettings

    catalog, ledger, _ = sourced
    weights = tmp_path / "sd"
    (weights / "unet").mkdir(parents=True)
    (weights / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (weights / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 10)
    config = quick_profile(generator=GeneratorSettings(kind="img2img", weights_dir=weights,
                                                       image_size=16))
    first = inputs_digest(catalog, ledger, config)
    assert inputs_digest(catalog, ledger, config) == first
    (weights / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 11)
    assert inputs_digest(catalog, ledger, config) != first
