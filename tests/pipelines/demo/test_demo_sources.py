"""The Br35H demo set: labels, simulated subjects, and a manifest ingest accepts."""

from __future__ import annotations

import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from pipelines.catalog import Catalog
from pipelines.demo.groups import compute_groups, load_slices, shipped_groups
from pipelines.demo.sources import (
    br35h_root,
    demo_slices,
    demo_subject_ids,
    subject_runs,
    write_demo_manifest,
)
from pipelines.settings import demo_profile
from pipelines.steps.ingest import ingest
from validation.audit import AuditIndex, transform_images
from validation.sources.manifest import read_manifest


def test_slices_labels_and_simulated_subjects() -> None:
    slices = demo_slices()
    assert len(slices) == 3000
    assert Counter(s.label for s in slices) == {1: 1500, 0: 1500}
    assert all(s.relpath.startswith("yes/" if s.label == 1 else "no/") for s in slices)
    assert all(s.path.is_file() and s.path.parent.parent == br35h_root() for s in slices)
    groups = shipped_groups(br35h_root())
    subject_of = {s.relpath: s.subject_id for s in slices}
    # every group of near-identical slices lies within ONE simulated subject
    assert all(len({subject_of[name] for name in group}) == 1 for group in groups)
    assert 400 < len(groups) < 520
    labels_of: dict[str, set[int]] = defaultdict(set)
    for s in slices:
        labels_of[s.subject_id].add(s.label)
    mixed_groups = [g for g in groups if len({n.split("/")[0] for n in g}) == 2]
    mixed = {sid for sid, v in labels_of.items() if len(v) == 2}
    # a subject's slices share a label, but for the groups Br35H files under both
    assert mixed == {subject_of[g[0]] for g in mixed_groups} and len(mixed) <= 8
    sizes = Counter(s.subject_id for s in slices)
    small = [sid for sid, n in sizes.items() if n < 2]
    assert len(small) <= 3 and sorted(sizes.values())[len(sizes) // 2] <= 10
    ids = demo_subject_ids()
    assert ids == sorted(sizes) and all(re.fullmatch(r"sim-\d{4}", i) for i in ids)
    assert 200 < len(ids) < 500
    assert len({s.record_id for s in slices}) == 3000


def test_no_near_duplicate_pair_lies_across_two_simulated_subjects() -> None:
    """By the audit itself, at the demo's image size, with the demo's thresholds.

    One subject set against the rest is one audit per bit of the subject number: any
    two subjects differ in some bit, so every cross-subject pair is audited, each way
    (the audit is not symmetric: regions of the sources, mirror of the candidate).
    """
    config = demo_profile()
    slices = demo_slices()
    images = load_slices(br35h_root(), [s.relpath for s in slices], config.generator.image_size)
    number = np.array([int(s.subject_id.removeprefix("sim-")) for s in slices])
    flagged: list[tuple[str, str]] = []
    for bit in range(int(number.max()).bit_length()):
        side = (number >> bit) & 1
        for here in (0, 1):
            cand, src = np.flatnonzero(side == here), np.flatnonzero(side != here)
            index = AuditIndex.build(images[src], [slices[i].relpath for i in src], config.audit)
            table = index.audit(images[cand]).table
            flagged += [(slices[cand[row]].relpath, by)
                        for row, by in enumerate(table.column("flagged_by").to_pylist()) if by]
    assert flagged == []
    # the audit does flag copies at this size: a copy of one slice, given to another subject
    twin = transform_images(images[:1], "noise", seed=0)
    others = np.flatnonzero(number != number[0])
    assert AuditIndex.build(images[others], None, config.audit).audit(
        np.concatenate([images[:1], twin])).flagged.tolist() == [False, False]
    same = np.flatnonzero(number == number[0])
    assert AuditIndex.build(images[same], None, config.audit).audit(twin).flagged.tolist() == [True]


@pytest.mark.slow
def test_the_shipped_groups_are_what_the_audit_finds() -> None:
    """`python -m pipelines.demo.groups` regenerates the file; it must not be stale."""
    assert compute_groups(br35h_root()) == shipped_groups(br35h_root())


def test_subjects_are_whole_groups_packed_by_label() -> None:
    groups = [["no/a.jpg"], ["no/b.jpg", "no/c.jpg"], ["yes/d.jpg"], ["no/e.jpg", "yes/f.jpg"],
              ["yes/g.jpg", "yes/h.jpg", "yes/i.jpg"]] + [[f"no/s{i}.jpg"] for i in range(20)]
    runs = subject_runs(groups, seed=3)
    assert sorted(n for run in runs for n in run) == sorted(n for g in groups for n in g)
    assert ["no/e.jpg", "yes/f.jpg"] in runs  # both labels: a subject alone
    for run in runs:
        if run != ["no/e.jpg", "yes/f.jpg"]:
            assert len({n.split("/")[0] for n in run}) == 1
        for group in groups:
            assert set(group) <= set(run) or not set(group) & set(run)
    assert subject_runs(groups, seed=3) == runs != subject_runs(groups, seed=4)


def test_fixed_seed_is_deterministic() -> None:
    assert demo_slices() == demo_slices()
    assert [s.subject_id for s in demo_slices(seed=1)] != [s.subject_id for s in demo_slices()]


def test_demo_manifest_ingests_and_marks_rows_simulated(tmp_path: Path, home: Path) -> None:
    manifest = write_demo_manifest(tmp_path / "demo" / "manifest.csv")
    rows = read_manifest(manifest)
    assert len(rows) == 3000 and all(r.simulated for r in rows)
    by_path = {s.relpath: s for s in demo_slices()}
    assert all(
        by_path[r.path].subject_id == r.subject_id and str(by_path[r.path].label) == str(r.label)
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
    assert {(r.record_id, r.subject_id, str(r.label)) for r in records} == {
        (r.record_id, r.subject_id, str(r.label)) for r in subset
    }
