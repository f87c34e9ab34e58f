"""Ingest rules: identity, idempotence, manifests, subjects from tags, the catalog."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from consentgen.errors import CatalogError, ConfigError
from pipelines.catalog.schema import TABLES
from pipelines.catalog import Catalog
from pipelines.steps.ingest import IngestConfig, ingest
from tests import files as f


def card(shade: int) -> bytes:
    im = f.pattern()
    im.paste((shade, shade, shade), (30, 5, 40, 15))
    return f.encode(im, "PNG")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(card(10))
    (root / "b.png").write_bytes(card(20))
    (root / "sub" / "c.jpg").write_bytes(f.encode(f.pattern(), "JPEG"))
    (root / "broken.png").write_bytes(card(30)[:100])
    return root


def manifest_for(folder: Path, rows: list[dict[str, object]], name: str = "m.csv") -> Path:
    return f.write_manifest(folder.parent / name, rows)


def tree(path: Path) -> dict[str, float]:
    return {
        str(p.relative_to(path)): p.stat().st_mtime_ns
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_reingest_is_a_no_op(folder: Path, home: Path) -> None:
    manifest = manifest_for(
        folder,
        [
            {"path": "a.png", "subject_id": "s1", "label": 1},
            {"path": "b.png", "subject_id": "s2", "label": 0},
            {"path": "sub/c.jpg", "subject_id": "s2", "label": 0},
            {"path": "broken.png", "subject_id": "s3", "label": 1},
        ],
    )
    config = IngestConfig(batch_size=2)
    first = ingest(folder, manifest=manifest, home=home, config=config)
    assert (first.accepted, first.duplicate, first.quarantined) == (3, 0, 1)
    assert first.quarantined_by_reason == {"truncated": 1}
    catalog = Catalog(home)
    rows_before = catalog.sources()
    quarantine_before = catalog.quarantined()
    files_before = tree(home / "sources")
    second = ingest(folder, manifest=manifest, home=home, config=config)
    assert (second.accepted, second.duplicate, second.quarantined) == (0, 3, 1)
    assert catalog.sources() == rows_before
    assert catalog.quarantined() == quarantine_before  # the same rejection is not repeated
    assert tree(home / "sources") == files_before
    assert [r.run_id for r in catalog.runs()] == [first.run_id, second.run_id]
    assert {r.subject_id: r.label for r in rows_before} == {"s1": "1", "s2": "0"}


def test_reingest_by_tag_is_a_no_op_too(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "dicom"
    folder.mkdir()
    (folder / "mr.dcm").write_bytes(f.testdata("MR_small.dcm").read_bytes())
    assert ingest(folder, subject_from_tag="PatientID", home=home).accepted == 1
    again = ingest(folder, subject_from_tag="PatientID", home=home)
    assert (again.accepted, again.duplicate) == (0, 1)
    assert len(Catalog(home).sources()) == 1


def test_same_pixels_two_subjects_are_two_records(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("x.png", "y.png", "x_copy.png"):
        (folder / name).write_bytes(card(50))
    manifest = manifest_for(
        folder,
        [
            {"path": "x.png", "subject_id": "alice"},
            {"path": "y.png", "subject_id": "bob"},
            {"path": "x_copy.png", "subject_id": "alice"},
        ],
    )
    summary = ingest(folder, manifest=manifest, home=home)
    assert (summary.accepted, summary.duplicate, summary.shared_content) == (2, 1, 1)
    rows = Catalog(home).sources()
    assert sorted(r.subject_id for r in rows) == ["alice", "bob"]
    assert rows[0].content_hash == rows[1].content_hash and rows[0].record_id != rows[1].record_id
    assert len(list((home / "sources").rglob("*.png"))) == 1


def test_changed_record_is_quarantined_not_overwritten(folder: Path, home: Path) -> None:
    first = manifest_for(
        folder, [{"path": "a.png", "subject_id": "s1", "label": 0, "record_id": "r1"}]
    )
    ingest(folder / "a.png", manifest=first, home=home)
    relabelled = manifest_for(
        folder, [{"path": "a.png", "subject_id": "s1", "label": 1, "record_id": "r1"}], "m2.csv"
    )
    summary = ingest(folder / "a.png", manifest=relabelled, home=home)
    assert summary.quarantined_by_reason == {"record_conflict": 1}
    (entry,) = Catalog(home).quarantined()
    assert "label" in entry.detail and entry.error_class == "CatalogError"
    (row,) = Catalog(home).sources()
    assert (row.record_id, row.label) == ("r1", "0")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,subject\na.png,s1\n", "line 1: missing column(s) subject_id"),
        ("path,subject_id,subjectid\na.png,s1,x\n", "line 1: unknown column(s) 'subjectid'"),
        ("path,subject_id\na.png,s1\nb.png,\n", "line 3: empty subject_id"),
        ("path,subject_id,label\na.png,s1,a/b\n", "line 2: label: 'a/b' cannot name a class folder"),
        ("path,subject_id\na.png,s1\na.png,s2\n", "line 3: path 'a.png' repeats line 2"),
        (
            "path,subject_id,record_id\na.png,s1,r\nb.png,s2,r\n",
            "line 3: record_id 'r' repeats line 2",
        ),
        ("path,subject_id\na.png,s1,extra\n", "line 2: expected 2 fields, found 3"),
        ("path,subject_id\na.png,s1\nmissing.png,s2\n", "line 3: 'missing.png' does not exist"),
        ("path,subject_id\n../outside.png,s1\n", "line 2: '../outside.png' is outside"),
        ("path,subject_id,simulated\na.png,s1,maybe\n", "line 2: simulated must be true or false"),
        ("", "line 1: empty"),
        ("path,subject_id\n", "line 2: no data rows"),
        ('path,subject_id\n"a.png,s1\n', "line 2: not valid CSV"),
    ],
    ids=[
        "missing-col",
        "unknown-col",
        "empty-subject",
        "bad-label",
        "dup-path",
        "dup-record",
        "field-count",
        "no-file",
        "escape",
        "bad-flag",
        "empty",
        "no-rows",
        "bad-quote",
    ],
)
def test_wrong_manifest_names_the_line_and_ingests_nothing(
    folder: Path, home: Path, text: str, message: str
) -> None:
    (folder.parent / "outside.png").write_bytes(card(1))
    manifest = folder.parent / "bad.csv"
    manifest.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        ingest(folder, manifest=manifest, home=home)
    assert message in str(caught.value) and str(manifest) in str(caught.value)
    assert not (home / "sources").exists() and Catalog(home).sources() == []


def test_manifest_that_is_not_text(folder: Path, home: Path) -> None:
    manifest = folder.parent / "binary.csv"
    manifest.write_bytes(b"\xff\xfe\x00path")
    with pytest.raises(ConfigError, match="not UTF-8"):
        ingest(folder, manifest=manifest, home=home)


def test_arguments_are_checked_before_anything_happens(folder: Path, home: Path) -> None:
    manifest = manifest_for(folder, [{"path": "a.png", "subject_id": "s1"}])
    with pytest.raises(ConfigError, match="exactly one"):
        ingest(folder, home=home)
    with pytest.raises(ConfigError, match="exactly one"):
        ingest(folder, manifest=manifest, subject_from_tag="PatientID", home=home)
    with pytest.raises(ConfigError, match="unknown DICOM tag"):
        ingest(folder, subject_from_tag="PatientIdentity", home=home)
    with pytest.raises(ConfigError, match="no such file"):
        ingest(folder / "nope", manifest=manifest, home=home)
    assert not (home / "catalog.duckdb").exists()


def test_subjects_from_a_dicom_tag(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "pacs"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm"):
        (folder / name).write_bytes(f.testdata(name).read_bytes())
    (folder / "photo.png").write_bytes(card(5))
    (folder / "anonymous.dcm").write_bytes(f.dicom(np.arange(16).reshape(4, 4), patient=False))
    summary = ingest(folder, subject_from_tag="PatientID", home=home)
    assert summary.accepted == 3
    assert summary.quarantined_by_reason == {"no_subject_tag": 2}
    subjects = {Path(r.source_path).name: r.subject_id for r in Catalog(home).sources()}
    assert subjects == {
        "CT_small.dcm": "1CT1",
        "MR_small.dcm": "4MR1",
        "examples_overlay.dcm": "021234567",
    }


def test_one_shape_per_catalog(folder: Path, home: Path) -> None:
    manifest = manifest_for(
        folder, [{"path": "a.png", "subject_id": "s1"}, {"path": "b.png", "subject_id": "s2"}]
    )
    ingest(folder / "a.png", manifest=manifest, home=home)
    with pytest.raises(ConfigError, match="64x64x1.*32x32x1"):
        ingest(folder / "b.png", manifest=manifest, home=home, config=IngestConfig(size=32))
    assert len(Catalog(home).sources()) == 1


def test_rgb_sources_and_simulated_flag(folder: Path, tmp_path: Path) -> None:
    home = tmp_path / "rgb-home"
    manifest = manifest_for(folder, [{"path": "a.png", "subject_id": "sim-1", "simulated": "true"}])
    summary = ingest(
        folder / "a.png",
        manifest=manifest,
        home=home,
        config=IngestConfig(channels=3, size="48x32"),
    )
    assert summary.simulated == 1
    (row,) = Catalog(home).sources()
    assert row.simulated and (row.width, row.height, row.channels) == (48, 32, 3)
    arr = np.asarray(Image.open(Catalog(home).image_file(row)))
    assert arr.shape == (32, 48, 3) and arr[30, 40].tolist() == [255, 0, 0]


def test_schema_is_idempotent_and_complete(home: Path) -> None:
    catalog = Catalog(home)
    catalog.ensure_schema()
    catalog.ensure_schema()
    assert len(TABLES) >= 3
    with catalog.read() as con:
        columns = {
            (t, c)
            for t, c in con.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
            ).fetchall()
        }
    for column in (
        "record_id",
        "subject_id",
        "label",
        "content_hash",
        "original_format",
        "original_width",
        "original_height",
        "source_path",
        "ingested_at",
        "simulated",
    ):
        assert ("sources", column) in columns
    for column in ("path", "reason", "error_class", "detail", "quarantined_at"):
        assert ("quarantine", column) in columns


HOLD_CATALOG = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
    "print('held', flush=True); time.sleep(30)"
)


def test_locked_catalog_gives_a_catalog_error(home: Path) -> None:
    catalog = Catalog(home, max_wait_s=0.3)
    catalog.ensure_schema()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLD_CATALOG,
            str(catalog.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(CatalogError, match="locked"):
            catalog.record()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # once the holder is gone the catalog is usable again
        try:
            catalog.record()
            break
        except CatalogError:
            assert time.monotonic() < deadline


def test_manifest_and_home_inside_the_folder_are_left_out(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "a.png").write_bytes(card(70))
    manifest = f.write_manifest(folder / "manifest.csv", [{"path": "a.png", "subject_id": "s1"}])
    home = folder / "data"
    first = ingest(folder, manifest=manifest, home=home)
    second = ingest(folder, manifest=manifest, home=home)  # now data/ holds a catalog and PNGs
    assert (first.files_seen, first.accepted, first.quarantined) == (1, 1, 0)
    assert (second.files_seen, second.duplicate, second.quarantined) == (1, 1, 0)
