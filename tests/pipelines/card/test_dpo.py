"""What a data protection officer reads: figures in words with flags, terms, the checks."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest

from pipelines.card import (
    NOT_MEANINGFUL,
    NOT_STATED,
    CalibrationRates,
    DatasetInfo,
    ExpectationsSummary,
    GeneratorInfo,
    PrivacyFigures,
    Suppressed,
    UtilityFigures,
    assessments,
    load_card,
    render_data_card,
)
from pipelines.card.dataset import DEFAULT_WITHDRAWAL
from pipelines.card.view import TEST_BANNER
from tests.pipelines.card.conftest import base_card, full_card
from tests.validation.release.conftest import COLUMNS, LABELS, SIZE, THRESHOLDS, make_manifest
from validation.release.expectations import validate_manifest


def _texts(tmp_path: Path, card) -> tuple[str, str]:
    md, page = render_data_card(card, tmp_path, sample_images=[], sample_labels=[])
    return md.read_text(), page.read_text()


def _row(card, figure: str):
    return next(a for a in assessments(card) if a.figure.startswith(figure))


def test_every_figure_says_what_it_measures_against_a_reference_with_a_flag(tmp_path: Path) -> None:
    card = full_card(np.random.default_rng(0), [])
    rows = assessments(card)
    assert [a.figure for a in rows] == [
        "Copies caught: brightness", "Copies caught: crop", "Copies caught: flip",
        "Copies caught: jpeg", "Copies caught: noise",
        "False positives (different images flagged)",
        "DCR share (closer to training than to unseen)", "DCR ratio", "Membership-inference AUC",
        "TSTR accuracy (train synthetic, test real)", "TRTR accuracy (train real, test real)",
        "Differential privacy (ε)"]
    for a in rows:
        assert a.meaning.endswith(".") and len(a.meaning) > 60 and a.reference, a.figure
    flags = {a.figure.split(" (")[0]: a.flag for a in rows}
    assert flags == {
        "Copies caught: brightness": "green", "Copies caught: crop": "amber",  # 91 %
        "Copies caught: flip": "green", "Copies caught: jpeg": "green",
        "Copies caught: noise": "green", "False positives": "green", "DCR share": "green",
        "DCR ratio": "green", "Membership-inference AUC": "green",
        "TSTR accuracy": "amber",  # 81 % against TRTR 93 %: 87 % of it
        "TRTR accuracy": "—", "Differential privacy": "amber"}  # ε = 8
    dcr = _row(card, "DCR share")
    assert (dcr.value, dcr.reference) == ("51.2 %", "≈ 50 %")
    assert dcr.sample == "400 synthetic images, 2,000 training records, 436 held-out records"
    for text in _texts(tmp_path, card):
        text = html.unescape(text)
        assert "synthetic images are no closer to training images than to unseen ones" in text
        assert "Lower is better" in text and "Higher is better" in text
        assert "green ≥ 95 %, amber ≥ 70 %, red below" in text  # the bands are printed


@pytest.mark.parametrize(("figures", "figure", "flag"), [
    ({"privacy": PrivacyFigures(dcr_closer_to_train_share=0.58, n_synthetic=400, n_holdout=300)},
     "DCR share", "amber"),
    ({"privacy": PrivacyFigures(dcr_closer_to_train_share=0.81, n_synthetic=400, n_holdout=300)},
     "DCR share", "red"),
    ({"privacy": PrivacyFigures(dcr_closer_to_train_share=0.31, n_synthetic=400, n_holdout=300)},
     "DCR share", "green"),  # closer to unseen images: nothing memorised
    ({"privacy": PrivacyFigures(membership_auc=0.35)}, "Membership", "red"),  # either side of 0.5
    ({"privacy": PrivacyFigures(membership_auc=0.57)}, "Membership", "amber"),
    ({"privacy": PrivacyFigures(dcr_ratio=0.5, n_synthetic=40, n_holdout=40)}, "DCR ratio", "red"),
    ({"calibration": CalibrationRates(false_positive_rate=0.66, n_negatives=50)},
     "False positives", "red"),
    ({"calibration": CalibrationRates(false_positive_rate=0.10, n_negatives=50)},
     "False positives", "amber"),
    ({"calibration": CalibrationRates(detection_rate={"crop": 0.6}, n_positives=100)},
     "Copies caught: crop", "red"),
    ({"utility": UtilityFigures(tstr_accuracy=0.52, trtr_accuracy=0.55, chance_accuracy=0.51,
                                n_test=200)}, "TSTR", "red"),  # 95 % of TRTR, but at chance
    ({"utility": UtilityFigures(tstr_accuracy=0.9, trtr_accuracy=0.93, n_test=200)},
     "TSTR", "green"),
    ({"generator": GeneratorInfo(kind="ddpm", dp_epsilon=0.5)}, "Differential", "green"),
    ({"generator": GeneratorInfo(kind="ddpm", dp_epsilon=50.0)}, "Differential", "red"),
])
def test_flags_follow_the_printed_bands(figures: dict, figure: str, flag: str) -> None:
    assert _row(base_card(**figures), figure).flag == flag


def test_a_figure_on_too_few_images_is_not_meaningful(tmp_path: Path) -> None:
    card = base_card(
        min_public_count=1,
        utility=UtilityFigures(tstr_accuracy=1.0, trtr_accuracy=0.5, n_test=2,
                               n_train_synthetic=16, n_train_real=40),
        privacy=PrivacyFigures(dcr_closer_to_train_share=0.9, dcr_ratio=0.2, n_synthetic=16,
                               n_train=40, n_holdout=3, membership_auc=0.9, mia_n_members=40,
                               mia_n_nonmembers=3),
        calibration=CalibrationRates(detection_rate={"flip": 0.1}, false_positive_rate=0.8,
                                     n_positives=5, n_per_transform=5, n_negatives=4))
    rows = assessments(card)
    assert {a.flag for a in rows if a.figure != "Differential privacy (ε)"} == {NOT_MEANINGFUL}
    tstr = _row(card, "TSTR")
    assert tstr.value == "100.0 %"
    assert tstr.sample == "2 real test images, 16 synthetic training, 40 real training records"
    for text in _texts(tmp_path, card):
        assert re.search(r"TSTR accuracy \(train synthetic, test real\)(</td><td>| \| )100\.0 %"
                         r"(</td><td>| \| )TRTR 50\.0 %(</td><td[^>]*>| \| )not meaningful", text)
        assert "red" not in re.sub(r"Flags:.*?anything\.", "", text, flags=re.S).split()
    # suppressed sizes (under k) are too few to judge as well
    hidden = base_card(utility=UtilityFigures(tstr_accuracy=0.9, trtr_accuracy=0.9,
                                              n_test=Suppressed(under=10)))
    assert _row(hidden, "TSTR").flag == NOT_MEANINGFUL
    assert _row(hidden, "TSTR").sample.startswith("< 10 real test images")


def test_a_test_build_says_not_for_publication_first(tmp_path: Path) -> None:
    md, page = _texts(tmp_path / "t", base_card(profile="test"))
    assert md.index("TEST BUILD — NOT FOR PUBLICATION") < md.index("## ")
    assert f'<p class="banner">{html.escape(TEST_BANNER)}</p>' in page
    assert page.index('class="banner"') < page.index("<h2>")
    for profile in ("demo", None):
        md, page = _texts(tmp_path / str(profile), base_card(profile=profile))
        assert "NOT FOR PUBLICATION" not in md and "NOT FOR PUBLICATION" not in page


def test_the_terms_a_dpo_expects_with_what_is_unset_shown_as_not_stated(tmp_path: Path) -> None:
    info = DatasetInfo(name="Brain MRI, synthetic", contact="dpo@example.org",
                       legal_basis="consent (GDPR Art. 9(2)(a))",
                       intended_uses=["training segmentation models"],
                       out_of_scope_uses=["diagnosis", "re-identification"])
    card = base_card(dataset=info)
    md, page = _texts(tmp_path, card)
    rows = dict(re.findall(r"^\| ([^|]+?) \| (.+?) \|$", md, flags=re.M))
    assert rows["Data controller"] == NOT_STATED == rows["Licence of the synthetic images"]
    assert rows["Contact for data protection questions"] == "dpo@example.org"
    assert rows["Intended uses"] == "training segmentation models"
    assert rows["Out-of-scope uses"] == "diagnosis; re-identification"
    assert rows["How a subject withdraws"] == DEFAULT_WITHDRAWAL  # a default when unset
    assert md.index("## Dataset and responsibilities") < md.index("## Counts")
    # in HTML, what is not stated is marked so it stands out
    assert page.count(f'<td class="ns">{NOT_STATED}</td>') == 2
    assert "<td>Legal basis of the processing</td><td>consent (GDPR Art. 9(2)(a))</td>" in page
    stated = card.model_copy(update={"dataset": info.model_copy(update={
        "controller": "Example Hospital", "licence": "CC BY-NC 4.0", "withdrawal": "Call us."})})
    md, page = _texts(tmp_path / "b", stated)
    assert NOT_STATED not in md and 'class="ns"' not in page
    assert "| How a subject withdraws | Call us. |" in md
    assert load_card(tmp_path / "b").dataset == stated.dataset  # kept for a withdrawal's redraw


def test_the_card_shows_every_expectation_with_its_observed_value(tmp_path: Path) -> None:
    release = tmp_path / "v0001"
    bad = make_manifest()
    bad.loc[3, "label"] = 7
    report = validate_manifest(bad, expected_columns=COLUMNS, labels=LABELS, image_size=SIZE,
                               thresholds=THRESHOLDS, docs_dir=release / "expectations")
    summary = ExpectationsSummary.from_report(report, release)
    md, page = _texts(release, base_card(expectations=[summary]))
    assert summary.docs_link == "expectations/release_manifest/index.html"
    assert "[validation page](expectations/release_manifest/index.html)" in md
    assert '<a href="expectations/release_manifest/index.html">validation page</a>' in page
    assert len(summary.results) == report.evaluated > 20
    for row in ("| release_manifest | expect_column_values_to_be_in_set | label | NO | "
                "1 of 40 unexpected (e.g. 7) |",
                "| release_manifest | expect_table_row_count_to_be_between | (table) | yes | 40 |"):
        assert row in md
    cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", page)]
    at = cells.index("expect_column_values_to_be_in_set", cells.index("label") - 1)
    assert cells[at - 1: at + 4] == ["release_manifest", "expect_column_values_to_be_in_set",
                                     "label", "NO", "1 of 40 unexpected (e.g. 7)"]


def test_a_build_file_that_states_no_legal_basis_gets_not_stated(tmp_path: Path) -> None:
    """The card never asserts a legal basis the controller did not give."""
    from pipelines.settings import DatasetSettings

    md, page = _texts(tmp_path, base_card(dataset=DatasetInfo(**DatasetSettings().model_dump())))
    rows = dict(re.findall(r"^\| ([^|]+?) \| (.+?) \|$", md, flags=re.M))
    assert rows["Legal basis of the processing"] == NOT_STATED
    assert f'<td>Legal basis of the processing</td><td class="ns">{NOT_STATED}</td>' in page
    assert "GDPR" not in md


def test_the_audit_section_says_it_compares_against_every_ingested_source(tmp_path: Path) -> None:
    """A copy of anyone, consenting or not, is what the audit stops: the DPO reads that
    where the audit's thresholds are."""
    md, page = _texts(tmp_path, base_card())
    section = md[md.index("## Near-duplicate audit"):]
    section = section[:section.index("\n## ", 1)]
    assert "The audit and its calibration compare against every ingested source, consenting " \
           "or not" in section
    html_section = html.unescape(page)[html.unescape(page).index("Near-duplicate audit"):]
    assert "every ingested source, consenting or not" in html_section[:html_section.index("<h2>")]
