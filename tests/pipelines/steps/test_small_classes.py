"""A class backed by very few subjects is left out (`SmallClass`), since its published name
would point at them: decided from the snapshot's eligible subjects, on the step itself and
through a real build whose release must not name the class anywhere."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.pipelines.steps.test_labels import PURPOSE, config, draw, published

from consent import Ledger
from consentgen.errors import NoEligibleRecordsError
from pipelines.catalog import Catalog, Exclusion, SnapshotClass
from pipelines.card.render import CARD_JSON
from pipelines.defs.runner import run_build
from pipelines.settings import LabelSettings
from pipelines.steps.eligibility import select_eligible
from pipelines.steps.ingest import ingest
from pipelines.steps.ingest_file import IngestConfig
from pipelines.steps.release import releases_root
from pipelines.steps.snapshot import take_snapshot

TRIANGLE_SUBJECTS = ("t-0", "t-1")
"""Two subjects, four drawings each: eight records, but only two people."""


def shapes(home: Path, circles: int = 8, squares: int = 8) -> Ledger:
    """`circles` and `squares` subjects with one drawing each, the triangle subjects with
    four each; everyone granted."""
    incoming, manifest = home.parent / "small", home.parent / "small.csv"
    incoming.mkdir()
    rows = []
    owners = ([("circle", f"c-{i}") for i in range(circles)]
              + [("square", f"s-{i}") for i in range(squares)]
              + [("triangle", s) for s in TRIANGLE_SUBJECTS for _ in range(4)])
    for n, (shape, subject) in enumerate(owners):
        draw(shape, 1000 + n).save(incoming / f"{n}.png")
        rows.append([f"{n}.png", subject, shape])
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows([["path", "subject_id", "label"], *rows])
    assert ingest(incoming, manifest=manifest, home=home,
                  config=IngestConfig(size=16)).accepted == len(rows)
    ledger = Ledger.at_home(home)
    ledger.init()
    for subject in sorted({r[1] for r in rows}):
        ledger.grant(subject, PURPOSE)
    return ledger


def reasons(chosen) -> dict[str, int]:
    return chosen.exclusion_counts()


def test_a_class_of_fewer_subjects_than_the_floor_is_left_out(home: Path) -> None:
    ledger = shapes(home)
    catalog = Catalog(home)
    snapshot = take_snapshot(ledger, catalog, PURPOSE)
    chosen = select_eligible(catalog, ledger, snapshot, config())  # the default floor, 5
    assert reasons(chosen) == {"SmallClass": 8}  # its records, though 8 >= 5: people count
    assert chosen.classes.labels == ("circle", "square")
    assert {r.label for r in chosen.records} == {"circle", "square"}
    assert {e.subject_id for e in catalog.select(Exclusion)} == set(TRIANGLE_SUBJECTS)
    recorded = catalog.select(SnapshotClass, "WHERE snapshot_id = ? ORDER BY class_index",
                              [snapshot.snapshot_id])
    assert [c.label for c in recorded] == ["circle", "square"]

    snapshot = take_snapshot(ledger, catalog, PURPOSE)
    lower = config(labels=LabelSettings(min_subjects_per_class=2))
    kept = select_eligible(catalog, ledger, snapshot, lower)
    assert reasons(kept) == {} and kept.classes.labels == ("circle", "square", "triangle")


def test_the_floor_counts_eligible_subjects_of_every_role_and_follows_consent(home: Path) -> None:
    """Held-out subjects count (the holdout never decides it), refused ones do not."""
    ledger = shapes(home, squares=5)
    catalog = Catalog(home)
    outcomes = {fraction: select_eligible(catalog, ledger, take_snapshot(ledger, catalog, PURPOSE),
                                          config(shards=1, holdout_fraction=fraction))
                for fraction in (0.0, 0.5)}
    assert {o.classes.labels for o in outcomes.values()} == {("circle", "square")}
    assert {o.exclusion_counts()["SmallClass"] for o in outcomes.values()} == {8}
    held = [r for r in outcomes[0.5].records if r.label == "square" and r.role == "holdout"]
    assert len(held) == 4  # one square subject trains, five stand behind the class

    ledger.revoke("s-0", PURPOSE)  # four squares left: under the floor
    snapshot = take_snapshot(ledger, catalog, PURPOSE)
    chosen = select_eligible(catalog, ledger, snapshot, config())
    assert reasons(chosen) == {"ConsentWithdrawn": 1, "SmallClass": 4 + 8}
    assert chosen.classes.labels == ("circle",)
    ledger.grant("s-0", PURPOSE)
    snapshot = take_snapshot(ledger, catalog, PURPOSE)
    assert select_eligible(catalog, ledger, snapshot, config()).classes.labels == ("circle", "square")


def test_when_every_class_is_small_nothing_is_eligible_and_it_says_why(home: Path) -> None:
    ledger = shapes(home, circles=3, squares=4)
    catalog = Catalog(home)
    snapshot = take_snapshot(ledger, catalog, PURPOSE)
    with pytest.raises(NoEligibleRecordsError) as refused:
        select_eligible(catalog, ledger, snapshot, config())
    assert str(refused.value) == (
        f"no eligible records for purpose {PURPOSE}: 15 sources, 15 excluded (SmallClass 15); "
        "every class has fewer than labels.min_subjects_per_class = 5 eligible subjects (grant "
        'more subjects, or labels.mode = "unconditional")')
    assert catalog.select(Exclusion) == []
    unconditional = config(labels=LabelSettings(mode="unconditional"))
    assert len(select_eligible(catalog, ledger, snapshot, unconditional).records) == 15


@pytest.mark.slow
def test_a_build_publishes_no_trace_of_a_small_class(home: Path) -> None:
    shapes(home)
    report = run_build(home, config(min_public_count=1))
    assert report.success, report.failure
    manifest, folders = published(home, report.version)
    assert folders == {"circle", "square"} and set(manifest["label"]) == {"circle", "square"}
    folder = releases_root(home) / report.version
    card = json.loads((folder / CARD_JSON).read_text(encoding="utf-8"))
    assert card["counts"]["excluded_by_reason"]["SmallClass"] == 8
    texts = [p for p in folder.rglob("*") if p.suffix in {".csv", ".json", ".md", ".html", ".txt"}]
    assert texts and not [p for p in texts if "triangle" in p.read_text(encoding="utf-8")]
