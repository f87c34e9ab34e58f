"""DCR reads ~0.5 without memorisation and ~1 with it; the membership AUC is a true AUC."""

from __future__ import annotations

import numpy as np
import pytest

from consentgen.errors import AuditError
from validation.audit import dcr_figures, membership_inference_auc, transform_images


@pytest.fixture(scope="module")
def thirds(distinct) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three disjoint sets of different slices (one per duplicate group)."""
    images = distinct[0]
    order = np.random.default_rng(0).permutation(len(images))
    return images[order[:170]], images[order[170:340]], images[order[340:]]


def test_dcr_share_is_near_half_for_a_holdout_control(thirds) -> None:
    train, holdout, control = thirds
    figures = dcr_figures(control, train, holdout)
    assert 0.4 <= figures.share_closer_to_train <= 0.6
    assert 0.85 <= figures.dcr_ratio <= 1.15
    assert figures.n_synthetic == len(control)
    assert figures.n_train == figures.n_holdout == figures.n_balanced == 170


def test_dcr_share_is_near_one_for_copies_of_training_images(thirds) -> None:
    train, holdout, _ = thirds
    copies = transform_images(train[:100], "noise", seed=4)
    figures = dcr_figures(copies, train, holdout)
    assert figures.share_closer_to_train >= 0.97
    assert figures.dcr_ratio < 0.4
    dumped = figures.model_dump()
    for key in ("share_closer_to_train", "dcr_ratio", "n_synthetic", "n_train", "n_holdout"):
        assert key in dumped


def test_dcr_balances_unequal_train_and_holdout(thirds) -> None:
    train, holdout, control = thirds
    figures = dcr_figures(control, train, holdout[:60], seed=1)
    assert figures.n_balanced == 60 and figures.n_train == 170
    assert 0.35 <= figures.share_closer_to_train <= 0.65


def test_membership_auc_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    members = rng.normal(0.9, 0.2, 300)
    others = rng.normal(1.0, 0.2, 250)
    pairwise = np.mean((members[:, None] < others[None, :])
                       + 0.5 * (members[:, None] == others[None, :]))
    assert membership_inference_auc(members, others) == pytest.approx(pairwise)
    assert membership_inference_auc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert membership_inference_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert membership_inference_auc([0.5, 0.5], [0.5, 0.5]) == 0.5
    same = rng.normal(1.0, 0.2, 2000)
    assert membership_inference_auc(same[:1000], same[1000:]) == pytest.approx(0.5, abs=0.04)


def test_membership_auc_rejects_empty_or_nan() -> None:
    with pytest.raises(AuditError, match="at least one"):
        membership_inference_auc([], [1.0])
    with pytest.raises(AuditError, match="finite"):
        membership_inference_auc([np.nan], [1.0])
