"""Every pair the audit would flag, and groups that no flagged pair crosses."""

from __future__ import annotations

import numpy as np

from validation.audit import METRICS, AuditConfig, AuditIndex, duplicate_groups, transform_images
from validation.audit.grouping import audit_groups, near_duplicate_pairs

from .conftest import Br35H


def test_pairs_flag_exactly_what_the_audit_flags(distinct) -> None:
    images, _, _ = distinct
    sources = images[:150]
    candidates = np.concatenate([
        transform_images(sources[:20], "noise", seed=1),
        transform_images(sources[20:40], "flip", seed=2),
        transform_images(sources[40:60], "crop", seed=3),
        images[150:200],  # other slices: mostly not flagged
    ])
    config = AuditConfig(search="exact")
    audited = AuditIndex.build(sources, None, config).audit(candidates)
    by = [set(b.split(",")) - {""} for b in audited.table.column("flagged_by").to_pylist()]
    pairs = near_duplicate_pairs(candidates, sources, config)
    for metric in METRICS:
        rows, cols = pairs[metric]
        assert len(rows) == len(cols) and (cols < len(sources)).all()
        assert {int(r) for r in rows} == {i for i, b in enumerate(by) if metric in b}, metric
    flagged = {int(r) for r, _ in zip(*pairs["pixel_l2"], strict=True)}
    assert set(range(20)) <= flagged and not flagged & set(range(110, 160))
    assert any(by[i] for i in range(60)) and not all(by[i] for i in range(60, 110))


def test_a_set_against_itself_has_no_self_pairs_and_groups_hold_every_pair(br35h: Br35H) -> None:
    images = np.concatenate([br35h.images[:400], transform_images(br35h.images[:30], "jpeg")])
    pairs = near_duplicate_pairs(images, None, AuditConfig())
    labels = audit_groups(images, AuditConfig())
    for metric, (rows, cols) in pairs.items():
        assert not (rows == cols).any(), metric
        assert (labels[rows] == labels[cols]).all(), metric  # no flagged pair across groups
    assert (labels[400:] == labels[:30]).all()  # each copy sits with its original
    assert len(rows) > 0 and 30 < len(np.unique(labels)) < 400
    # duplicate_groups' mirror links are joined too: a group never splits one of them
    dup = duplicate_groups(images)
    assert all(len(np.unique(labels[dup == group])) == 1 for group in np.unique(dup))
