"""The Br35H demo set: labels, simulated subjects, and a manifest ingest accepts."""

from __future__ import annotations

import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

from pipelines.catalog import Catalog
from pipelines.demo.sources import (
    br35h_root,
    demo_slices,
    demo_subject_ids,
    write_demo_manifest,
)
from pipelines.steps.ingest import ingest
from validation.sources.manifest import read_manifest


def test_slices_labels_and_simulated_subjects() -> None:
    slices = demo_slices()
    assert len(slices) == 3000
    assert Counter(s.label for s in slices) == {1: 1500, 0: 1500}
    assert all(s.relpath.startswith("yes/" if s.label == 1 else "no/") for s in slices)
    assert all(s.path.is_file() and s.path.parent.parent == br35h_root() for s in slices)
    labels_of: dict[str, set[int]] = defaultdict(set)
    for s in slices:
        labels_of[s.subject_id].add(s.label)
    assert all(len(v) == 1 for v in labels_of.values())  # a subject's slices share a label
    sizes = Counter(s.subject_id for s in slices)
    assert max(sizes.values()) <= 8 and sum(1 for n in sizes.values() if n >= 2) >= len(sizes) - 2
    ids = demo_subject_ids()
    assert ids == sorted(sizes) and all(re.fullmatch(r"sim-\d{4}", i) for i in ids)
    assert 300 < len(ids) < 1500
    assert len({s.record_id for s in slices}) == 3000


def test_fixed_seed_is_deterministic() -> None:
    assert demo_slices() == demo_slices()
    assert [s.subject_id for s in demo_slices(seed=1)] != [s.subject_id for s in demo_slices()]


def test_demo_manifest_ingests_and_marks_rows_simulated(tmp_path: Path, home: Path) -> None:
    manifest = write_demo_manifest(tmp_path / "demo" / "manifest.csv")
    rows = read_manifest(manifest)
    assert len(rows) == 3000 and all(r.simulated for r in rows)
    by_path = {s.relpath: s for s in demo_slices()}
    assert all(
        by_path[r.path].subject_id == r.subject_id and by_path[r.path].label == r.label
        for r in rows
    )
    # a few simulated subjects' slices, copied with their layout, through the real ingest
    chosen = set(demo_subject_ids()[:4])
    subset = [r for r in rows if r.subject_id in chosen]
    root = tmp_path / "br35h"
    for r in subset:
        (root / r.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(br35h_root() / r.path, root / r.path)
    lines = manifest.read_text(encoding="utf-8").splitlines()
    small = tmp_path / "small.csv"
    small.write_text(
        "\n".join([lines[0], *(lines[r.line - 1] for r in subset)]) + "\n", encoding="utf-8"
    )
    summary = ingest(root, manifest=small, home=home)
    assert summary.accepted == len(subset) == summary.simulated and summary.quarantined == 0
    records = Catalog(home).sources()
    assert all(r.simulated and r.original_format in ("JPEG", "PNG") for r in records)
    assert {(r.record_id, r.subject_id, r.label) for r in records} == {
        (r.record_id, r.subject_id, r.label) for r in subset
    }
