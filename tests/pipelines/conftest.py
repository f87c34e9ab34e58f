"""A small real deployment: a few dozen Br35H slices, a real ledger, tiny models."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import dagster as dg
import pytest

from consent import Ledger
from pipelines.catalog import Catalog
from pipelines.demo.sources import demo_slices
from pipelines.steps.ingest import ingest
from pipelines.settings import BuildConfig, quick_profile

PURPOSE = "synthetic-training"


def pick_subjects(n_per_label: int) -> list[str]:
    """Subjects of about 7 slices, half of them per label (a stable choice; the demo's
    subjects are whole groups of near-identical slices, some of them 80 slices big)."""
    by_subject: dict[str, list] = {}
    for s in demo_slices():
        by_subject.setdefault(s.subject_id, []).append(s)
    chosen = []
    for label in ("0", "1"):
        ranked = sorted((sid for sid, ss in by_subject.items() if {str(s.label) for s in ss} == {label}),
                        key=lambda sid: (abs(len(by_subject[sid]) - 7), sid))
        chosen += ranked[:n_per_label]
    return sorted(chosen)


def ingest_subjects(home: Path, subjects: list[str]) -> None:
    """Copy these subjects' slices into an incoming folder and ingest it with a manifest."""
    wanted = set(subjects)
    incoming = home.parent / "incoming"
    manifest = home.parent / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "subject_id", "label", "record_id"])
        for s in demo_slices():
            if s.subject_id in wanted:
                (incoming / s.relpath).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(s.path, incoming / s.relpath)
                writer.writerow([s.relpath, s.subject_id, s.label, s.record_id])
    summary = ingest(incoming, manifest=manifest, home=home)
    assert summary.accepted > 0 and summary.quarantined == 0


class Deployment:
    """A data home with sources and a ledger, plus the config and instance to build with."""

    def __init__(self, home: Path, subjects: list[str], config: BuildConfig) -> None:
        self.home = home
        self.subjects = subjects
        self.config = config
        self.ledger = Ledger.at_home(home)
        self.catalog = Catalog(home)
        self.instance = dg.DagsterInstance.ephemeral()


@pytest.fixture
def deployment(home: Path) -> Deployment:
    subjects = pick_subjects(8)  # 16 subjects, ~100 slices
    ingest_subjects(home, subjects)
    dep = Deployment(home, subjects, quick_profile())
    dep.ledger.init()
    return dep
