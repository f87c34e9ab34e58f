"""Calibration on real slices: copies are detected, different slices are not."""

from __future__ import annotations

import numpy as np
import pytest

from consentgen.errors import AuditError
from validation.audit import (
    TRANSFORMS,
    AuditConfig,
    calibrate,
    duplicate_groups,
    transform_images,
)

from .conftest import Br35H


def test_default_thresholds_detect_light_copies_and_spare_other_slices(distinct) -> None:
    images, _, names = distinct
    report = calibrate(images, AuditConfig(search="exact"), seed=0, source_ids=names,
                       n_positives=80, n_negatives=150)
    assert set(report.detection) == set(TRANSFORMS)
    for t in ("flip", "noise", "brightness", "jpeg"):
        assert report.detection[t].detected >= 0.95, t
    assert report.detection["crop"].detected >= 0.5
    assert report.detection["flip"].by_metric["embedding_cosine"] >= 0.95
    assert report.n_negatives >= 150 and report.n_reference == len(images) - report.n_negatives
    # 9 of 150 here, and every one is the same slice zoomed or shifted (looked at): Br35H
    # copies that pixel-based grouping cannot join, caught by the region descriptors
    assert report.false_positive_rate <= 0.08
    assert report.false_positive_by_metric["pixel_l2"] == 0.0
    assert len(report.flagged_negative_ids) == round(report.false_positive_rate
                                                     * report.n_negatives)
    assert report.thresholds == AuditConfig().thresholds()
    assert sum(report.histograms["negatives"]["pixel_l2"].counts) == report.n_negatives


def test_calibration_reflects_the_configured_thresholds(distinct) -> None:
    images, _, _ = distinct
    strict = AuditConfig(search="exact", phash_max_distance=0, pixel_l2_max=0.05,
                         patch_l2_max=0.05, embedding_cosine_min=0.9999)
    report = calibrate(images[:200], strict, seed=1, n_positives=40, n_negatives=60)
    assert report.detection["noise"].detected < 0.5
    assert report.thresholds["pixel_l2"] == 0.05


def test_groups_keep_twins_out_of_the_negatives(br35h: Br35H) -> None:
    subset = slice(0, 600)
    images, groups = br35h.images[subset], br35h.groups[subset]
    grouped = calibrate(images, AuditConfig(search="exact"), seed=2, groups=groups,
                        n_positives=20, n_negatives=150)
    ungrouped = calibrate(images, AuditConfig(search="exact"), seed=2, n_positives=20,
                          n_negatives=150)
    assert grouped.negatives_grouped and not ungrouped.negatives_grouped
    # split image by image, most negatives have a copy among the reference sources
    assert ungrouped.false_positive_rate > 0.5
    assert grouped.false_positive_rate <= 0.05


def test_duplicate_groups_of_br35h(br35h: Br35H) -> None:
    n_groups = len(np.unique(br35h.groups))
    assert 450 <= n_groups <= 600  # 3,000 files, ~510 different slices
    imgs = br35h.distinct()[0][:50]
    with_twins = np.concatenate([imgs, transform_images(imgs[:10], "flip"),
                                 transform_images(imgs[10:20], "brightness")])
    labels = duplicate_groups(with_twins)
    assert len(np.unique(labels)) == 50
    assert (labels[50:60] == labels[:10]).all() and (labels[60:70] == labels[10:20]).all()
    # brains are nearly symmetric: some mirrors join even unmatched, but not all
    assert 50 < len(np.unique(duplicate_groups(with_twins, mirrored=False))) <= 60


def test_transforms_are_light_and_seeded(distinct) -> None:
    imgs = distinct[0][:5]
    for t in TRANSFORMS:
        out = transform_images(imgs, t, seed=3)
        assert out.shape == imgs.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, transform_images(imgs, t, seed=3))
    np.testing.assert_array_equal(transform_images(imgs, "flip"), imgs[:, :, ::-1])
    rgb = np.repeat(imgs[..., None], 3, axis=-1)
    assert transform_images(rgb, "jpeg").shape == rgb.shape
    with pytest.raises(AuditError, match="unknown transform"):
        transform_images(imgs, "rotate")
