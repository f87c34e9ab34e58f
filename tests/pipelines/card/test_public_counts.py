"""Small counts of people never reach the card; withdrawals and the expiry policy do."""

from __future__ import annotations

import html
import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pipelines.card import (
    CARD_JSON,
    Counts,
    PrivacyFigures,
    Suppressed,
    UtilityFigures,
    WithdrawalLine,
    card_files,
    choose_samples,
    load_card,
    public_count,
    render_data_card,
)
from pipelines.catalog.reasons import WithdrawalReason
from tests.pipelines.card.conftest import base_card, full_card, samples

K = 10
UNDER = Suppressed(under=K)


def test_public_count_suppresses_under_k_zero_included() -> None:
    assert [public_count(n, K) for n in (0, 1, 9, 10, 11)] == [UNDER, UNDER, UNDER, 10, 11]
    assert public_count(0, 1) == 0 and public_count(3, 1) == 3  # k = 1 suppresses nothing
    assert str(UNDER) == "< 10"
    with pytest.raises(ValueError):
        public_count(-1, K)


@pytest.mark.parametrize("field", [
    {"counts": Counts(eligible_subjects=3)},
    {"counts": Counts(sources_total=0)},
    {"counts": Counts(eligible_records=9)},
    {"counts": Counts(excluded_by_reason={"ConsentWithdrawn": 1, "NoConsentRecord": 40})},
    {"counts": Counts(shards=2, records_per_shard=[120, 4])},
    {"privacy": PrivacyFigures(n_holdout=5)},
    {"privacy": PrivacyFigures(n_train=2)},
    {"utility": UtilityFigures(n_test=7)},
    {"withdrawals": [WithdrawalLine(images=3, on=date(2026, 1, 5),
                                    reason=WithdrawalReason.WITHDRAWN)]},
    {"counts": Counts(eligible_subjects=Suppressed(under=5))},  # suppressed under another k
])
def test_a_card_refuses_an_exact_small_count_of_people(field: dict) -> None:
    with pytest.raises(ValidationError, match="must be suppressed"):
        base_card(**field)


def test_small_counts_pass_suppressed_and_image_counts_stay_exact() -> None:
    card = base_card(
        counts=Counts(eligible_subjects=UNDER, eligible_records=12,
                      excluded_by_reason={"ConsentWithdrawn": UNDER, "NoConsentRecord": 40},
                      shards=2, records_per_shard=[UNDER, 11], candidates_generated=3,
                      flagged=1, replaced=1, published_per_label={"0": 2}),
        privacy=PrivacyFigures(n_holdout=UNDER, n_synthetic=2),
        withdrawals=[WithdrawalLine(images=UNDER, on=date(2026, 1, 5), reason=None)],
    )
    assert card.counts.published_total == 2
    assert base_card(min_public_count=1, counts=Counts(eligible_subjects=3)).counts.eligible_subjects == 3
    with pytest.raises(ValidationError):
        base_card(expiry_policy="forever")


def _texts(tmp_path: Path, card, **kw) -> tuple[str, str]:
    md, page = render_data_card(card, tmp_path, sample_images=kw.get("images", []),
                                sample_labels=kw.get("labels", []))
    return md.read_text(), html.unescape(page.read_text())


def test_suppressed_counts_print_as_under_k_in_both_files(tmp_path: Path) -> None:
    card = base_card(counts=Counts(
        sources_total=120, eligible_subjects=UNDER, eligible_records=80,
        excluded_by_reason={"ConsentExpired": UNDER, "NoConsentRecord": 31}, shards=2,
        records_per_shard=[UNDER, 71]), utility=UtilityFigures(n_test=UNDER))
    for text in _texts(tmp_path, card):
        assert re.search(r"Eligible subjects(</td><td>| \| )< 10(</td>| \|)", text)
        assert "ConsentExpired: < 10, NoConsentRecord: 31" in text
        assert "0: < 10, 1: 71" in text
        assert "< 10 real test images" in text
        assert re.search(r"Smallest count of people shown(</td><td>| \| )10 \(", text)


def test_withdrawal_lines_and_expiry_policy_in_both_files(tmp_path: Path) -> None:
    lines = [WithdrawalLine(images=12, on=date(2026, 1, 5), reason=WithdrawalReason.WITHDRAWN),
             WithdrawalLine(images=UNDER, on=date(2026, 1, 6), reason=WithdrawalReason.IMAGE),
             WithdrawalLine(images=10, on=date(2026, 1, 7), reason=None)]
    card = base_card(withdrawals=lines, expiry_policy="keep")
    for text in _texts(tmp_path / "a", card):
        assert "Withdrawn: 12 images on 2026-01-05 (ConsentWithdrawn)" in text
        assert "Withdrawn: < 10 images on 2026-01-06 (ImageWithdrawn)" in text
        assert "Withdrawn: 10 images on 2026-01-07 (reason not recorded)" in text
        assert "images still published" in text and "No image has been withdrawn" not in text
        assert re.search(r"Expiry policy(</td><td>| \| )keep \(", text)
        assert "No image of this release is still published" in text  # no grid left
    for text in _texts(tmp_path / "b", base_card()):
        assert "Withdrawal" in text and "No image has been withdrawn from this release." in text
        assert "Withdrawn:" not in text and "no samples given" in text
        assert re.search(r"Expiry policy(</td><td>| \| )withdraw \(", text)


def test_card_json_holds_the_model_and_nothing_more(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    card = base_card(counts=Counts(eligible_subjects=UNDER, shards=1, records_per_shard=[UNDER]),
                     withdrawals=[WithdrawalLine(images=UNDER, on=date(2026, 1, 5),
                                                 reason=WithdrawalReason.EXPIRED)])
    images, labels = samples(rng, 3)
    render_data_card(card, tmp_path, sample_images=images, sample_labels=labels)
    assert load_card(tmp_path) == card
    assert '"eligible_subjects": {\n      "under": 10\n    }' in (tmp_path / CARD_JSON).read_text()
    files = card_files(card, sample_images=images, sample_labels=labels)
    assert list(files)[-1] == CARD_JSON  # written last: a reader finding it finds the rest
    assert all((tmp_path / name).read_bytes() == data for name, data in files.items())
    full = full_card(rng, [])
    assert load_card(render_data_card(full, tmp_path / "full", sample_images=[],
                                      sample_labels=[])[0].parent) == full


def test_the_sample_choice_only_replaces_what_was_withdrawn() -> None:
    ids = [f"{i:032x}" for i in range(60)]
    first = choose_samples(ids, seed=0)
    assert len(first) == 32 and first == choose_samples(reversed(ids), seed=0)
    gone = set(first[:5])
    after = choose_samples([i for i in ids if i not in gone], seed=0)
    assert [i for i in first if i not in gone] == after[:27] and not gone & set(after)
    assert choose_samples(ids, seed=1) != first
    assert sorted(choose_samples(ids[:3], seed=0)) == ids[:3]  # fewer than 32: all of them
