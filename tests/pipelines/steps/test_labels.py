"""Labels as data: class names, integers and no labels at all, through real builds.

Sources are shapes drawn with Pillow (circle, square, triangle), ingested with a manifest,
built by real Dagster runs with tiny models; the early refusals of eligible_records are
checked on the step itself, before anything trains.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from consent import Ledger
from consentgen.errors import BuildInputError, NoEligibleRecordsError, TooFewRecordsError
from generators.checkpoints import read_checkpoint_meta
from generators.shards import shard_of
from pipelines.catalog import Catalog, Exclusion, ShardModel, SnapshotClass
from pipelines.defs.runner import run_build
from pipelines.settings import (
    PROFILES,
    BuildConfig,
    FigureSettings,
    GeneratorSettings,
    LabelSettings,
)
from pipelines.steps.eligibility import is_holdout, select_eligible
from pipelines.steps.ingest import ingest
from pipelines.steps.ingest_file import IngestConfig
from pipelines.steps.release import releases_root
from pipelines.steps.shard_training import expected_model
from pipelines.steps.snapshot import take_snapshot

PURPOSE = "synthetic-training"
SHAPES = ("circle", "square", "triangle")
PER_SHAPE = 8


def draw(shape: str, seed: int, size: int = 32, *, colour: bool = False) -> Image.Image:
    """One shape on black, its place, size and brightness (or colour) from `seed`."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB" if colour else "L", (size, size), 0)
    r = int(rng.integers(6, 12))
    cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
    fill = tuple(int(v) for v in rng.integers(60, 256, 3)) if colour else int(rng.integers(120, 256))
    box = (cx - r, cy - r, cx + r, cy + r)
    pen = ImageDraw.Draw(im)
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return im


def shapes_home(home: Path, *, labels: bool, consent: bool = True, channels: int = 1) -> Ledger:
    """PER_SHAPE drawings of each shape, one subject each, ingested at 16 px (in colour when
    `channels` is 3); every subject granted when `consent`."""
    incoming, manifest = home.parent / "shapes", home.parent / "shapes.csv"
    incoming.mkdir()
    rows = []
    for k, shape in enumerate(SHAPES):
        for i in range(PER_SHAPE):
            name = f"{shape}-{i}.png"
            draw(shape, 100 * k + i, colour=channels == 3).save(incoming / name)
            rows.append([name, f"{shape}-subject-{i}"] + ([shape] if labels else []))
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows([["path", "subject_id"] + (["label"] if labels else []), *rows])
    summary = ingest(incoming, manifest=manifest, home=home,
                     config=IngestConfig(size=16, channels=channels))
    assert summary.accepted == len(rows) and summary.quarantined == 0
    ledger = Ledger.at_home(home)
    ledger.init()
    if consent:
        for row in rows:
            ledger.grant(row[1], PURPOSE)
    return ledger


def config(generator: dict | None = None, **changes) -> BuildConfig:
    """The test preset (no class names) without the slow figures; `generator` keys over
    its generator section."""
    quiet = FigureSettings(membership_inference=False, utility=False, calibration=False)
    base = PROFILES["test"](figures=quiet)
    settings = GeneratorSettings.model_validate(base.generator.model_dump() | (generator or {}))
    return base.model_copy(update={"generator": settings, **changes})


def published(home: Path, version: str) -> tuple[pd.DataFrame, set[str]]:
    folder = releases_root(home) / version
    manifest = pd.read_csv(folder / "manifest.csv", dtype={"label": str})
    return manifest, {p.parent.name for p in folder.glob("images/*/*.png")}


@pytest.mark.slow
def test_class_names_name_the_release_folders_and_the_manifest(home: Path) -> None:
    shapes_home(home, labels=True)
    report = run_build(home, config())
    assert report.success and report.version == "v0001", report.failure
    manifest, folders = published(home, "v0001")
    assert folders == set(SHAPES)  # images/circle/..., images/square/..., images/triangle/...
    assert set(manifest["label"]) == set(SHAPES)
    assert (manifest["label"] == manifest["label_name"]).all()
    assert all(name.startswith(f"images/{label}/")
               for name, label in zip(manifest["file_name"], manifest["label"], strict=True))
    catalog = Catalog(home)
    classes = catalog.select(SnapshotClass, "ORDER BY class_index")
    assert [(c.class_index, c.label, c.conditional) for c in classes] == [
        (0, "circle", True), (1, "square", True), (2, "triangle", True)]
    for model in catalog.select(ShardModel):  # one class embedding per class name
        assert read_checkpoint_meta(home / model.model_path).training.config.num_classes == 3


@pytest.mark.slow
def test_without_labels_the_build_is_unconditional_with_one_folder(home: Path) -> None:
    shapes_home(home, labels=False)
    report = run_build(home, config(labels=LabelSettings(unlabelled="shapes")))
    assert report.success, report.failure
    manifest, folders = published(home, report.version)
    assert folders == {"shapes"}
    assert set(manifest["label"]) == set(manifest["label_name"]) == {"shapes"}
    catalog = Catalog(home)
    assert [(c.label, c.conditional) for c in catalog.select(SnapshotClass)] == [("shapes", False)]
    for model in catalog.select(ShardModel):
        assert read_checkpoint_meta(home / model.model_path).training.config.num_classes is None


@pytest.mark.slow
def test_a_colour_build_trains_and_samples_rgb_images(home: Path) -> None:
    shapes_home(home, labels=True, channels=3)
    report = run_build(home, config(generator={"channels": 3}))
    assert report.success, report.failure
    folder = releases_root(home) / report.version
    files = sorted(folder.glob("images/*/*.png"))
    assert files and {Image.open(p).mode for p in files} == {"RGB"}
    pixels = np.stack([np.asarray(Image.open(p), dtype=np.int16) for p in files])
    assert np.abs(pixels[..., 0] - pixels[..., 1]).mean() > 1  # colour, not grey as RGB
    for model in Catalog(home).select(ShardModel):
        assert read_checkpoint_meta(home / model.model_path).training.config.channels == 3


def test_integer_labels_are_their_decimal_text_and_take_names(home: Path) -> None:
    incoming = home.parent / "numbers"
    incoming.mkdir()
    for i in range(3):
        draw("circle", i).save(incoming / f"{i}.png")
    (home.parent / "numbers.csv").write_text(
        "path,subject_id,label\n0.png,a,01\n1.png,b,1\n2.png,c,10\n", encoding="utf-8")
    ingest(incoming, manifest=home.parent / "numbers.csv", home=home)
    assert sorted(s.label for s in Catalog(home).sources()) == ["1", "1", "10"]
    ledger = Ledger.at_home(home)
    ledger.init()
    for subject in "abc":
        ledger.grant(subject, PURPOSE)
    named = config(shards=1, holdout_fraction=0.0, generator={"image_size": 16},
                   labels=LabelSettings(names={"01": "one", "10": "ten"},
                                        min_subjects_per_class=1))
    chosen = select_eligible(Catalog(home), ledger, take_snapshot(ledger, Catalog(home), PURPOSE),
                             named)
    assert chosen.classes.labels == ("1", "10")  # numerically: "10" after "1" (and "2")
    assert [named.labels.name_of(label) for label in chosen.classes.labels] == ["one", "ten"]


def test_no_eligible_records_is_one_line_with_the_counts_by_reason(home: Path) -> None:
    ledger = shapes_home(home, labels=True, consent=False)
    catalog = Catalog(home)
    snapshot = take_snapshot(ledger, catalog, PURPOSE)
    with pytest.raises(NoEligibleRecordsError) as refused:
        select_eligible(catalog, ledger, snapshot, config())
    n = len(SHAPES) * PER_SHAPE
    assert str(refused.value) == (f"no eligible records for purpose {PURPOSE}: {n} sources, "
                                  f"{n} excluded (NoConsentRecord {n})")
    assert catalog.select(Exclusion) == []  # refused before anything was recorded

    for subject in {s.subject_id for s in catalog.sources()}:
        ledger.grant(subject, PURPOSE)
    snapshot = take_snapshot(ledger, catalog, PURPOSE)
    unlabelled = config(labels=LabelSettings(mode="conditional", classes=["pentagon"]))
    with pytest.raises(NoEligibleRecordsError, match=rf"\({'LabelNotInClasses'} {n}\)$"):
        select_eligible(catalog, ledger, snapshot, unlabelled)


@pytest.mark.slow
def test_a_build_without_eligible_records_fails_before_training(home: Path) -> None:
    shapes_home(home, labels=False, consent=False)
    report = run_build(home, config(labels=LabelSettings(mode="conditional")))
    n = len(SHAPES) * PER_SHAPE
    assert not report.success and report.version is None
    assert report.failure == (f"no eligible records for purpose {PURPOSE}: {n} sources, "
                              f"{n} excluded (NoConsentRecord {n})")
    assert Catalog(home).select(ShardModel) == []


def test_too_few_records_for_the_shards_or_classes_says_what_to_change(home: Path) -> None:
    ledger = shapes_home(home, labels=True)
    catalog = Catalog(home)
    snapshot = take_snapshot(ledger, catalog, PURPOSE)
    with pytest.raises(TooFewRecordsError, match=r"would have no training record .* use fewer "
                                                 r"shards \(shards = \d+ fits\)$"):
        select_eligible(catalog, ledger, snapshot, config(shards=64))
    for i in range(PER_SHAPE):
        ledger.revoke(f"triangle-subject-{i}", PURPOSE)
    snapshot = take_snapshot(ledger, catalog, PURPOSE)
    with pytest.raises(TooFewRecordsError) as refused:
        select_eligible(catalog, ledger, snapshot, config())
    assert str(refused.value) == (
        "class(es) 'triangle' have no eligible training record (a label of the sources): set "
        'labels.classes = ["circle", "square"], or labels.mode = "unconditional"')
    with pytest.raises(TooFewRecordsError, match=r"\(in labels.classes\): drop it from "
                                                 r"labels.classes, or labels.mode"):
        select_eligible(catalog, ledger, snapshot, config(labels=LabelSettings(classes=SHAPES)))
    chosen = select_eligible(catalog, ledger, snapshot,
                             config(labels=LabelSettings(classes=["circle", "square"])))
    assert {e.reason for e in chosen.exclusions} == {"ConsentWithdrawn"}


def test_a_build_larger_than_its_sources_says_what_works(home: Path) -> None:
    """A home holds one size (ingest refuses another), so the way out is a smaller build or
    a new home, never a re-ingest into this one."""
    ledger = shapes_home(home, labels=True)
    catalog = Catalog(home)
    snapshot = take_snapshot(ledger, catalog, PURPOSE)
    with pytest.raises(BuildInputError) as refused:
        select_eligible(catalog, ledger, snapshot, config(generator={"image_size": 32}))
    assert str(refused.value) == (
        "generator.image_size = 32 is larger than the sources of this home (stored at 16x16 "
        "px): set generator.image_size <= 16, or ingest into a new home with `consentgen ingest "
        "DIR --size 32`")
    assert catalog.select(Exclusion) == []
    chosen = select_eligible(catalog, ledger, snapshot, config(generator={"image_size": 16}))
    assert len(chosen.records) == len(SHAPES) * PER_SHAPE


def test_the_class_list_is_in_each_shard_models_fingerprint(home: Path) -> None:
    ledger = shapes_home(home, labels=True)
    catalog = Catalog(home)
    auto = config()
    reordered = config(labels=LabelSettings(classes=["triangle", "square", "circle"]))

    def fingerprints(cfg: BuildConfig) -> list[str]:
        snapshot = take_snapshot(ledger, catalog, PURPOSE)
        select_eligible(catalog, ledger, snapshot, cfg)
        return [expected_model(catalog, snapshot.snapshot_id, s, cfg)[1] for s in range(cfg.shards)]

    before = fingerprints(auto)
    assert fingerprints(auto) == before  # nothing changed: no shard would retrain
    swapped = fingerprints(reordered)  # the same records, another index per label
    assert all(a != b for a, b in zip(before, swapped, strict=True))
    # a revocation in one shard leaves the other shards' fingerprints as they were
    victim = next(s for s in catalog.sources() if not is_holdout(s.subject_id, auto.holdout_fraction))
    ledger.revoke(victim.subject_id, PURPOSE)
    after = fingerprints(auto)
    assert [s for s in range(auto.shards) if after[s] != before[s]] == [
        shard_of(victim.subject_id, auto.shards)]
