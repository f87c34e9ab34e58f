"""The data card: real files, real PNGs, and 'not computed' where a figure is missing."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from consentgen.errors import ConfigError
from pipelines.card import (
    NOT_COMPUTED,
    AuditThreshold,
    CalibrationRates,
    ConsentSnapshotHead,
    Counts,
    DataCard,
    DistanceDistribution,
    ExpectationsSummary,
    GeneratorInfo,
    PrivacyFigures,
    UtilityFigures,
    render_data_card,
)
from tests.validation.release.conftest import COLUMNS, LABELS, SIZE, THRESHOLDS, make_manifest
from validation.release.expectations import validate_manifest

HEAD_HASH = hashlib.sha256(b"ledger head 1234").hexdigest()
THRESHOLD_RED = (196, 78, 82)  # the colour the threshold line is drawn in


def thresholds() -> dict[str, AuditThreshold]:
    return {m: AuditThreshold(direction=d, value=v) for m, (d, v) in THRESHOLDS.items()}


def base_card(**overrides: object) -> DataCard:
    fields: dict[str, object] = {
        "version": "v0003",
        "created_at": datetime(2025, 3, 4, 12, 30, tzinfo=UTC),
        "consent": ConsentSnapshotHead(seq=1234, hash=HEAD_HASH,
                                       snapshot_time=datetime(2025, 3, 4, 12, 0, tzinfo=UTC)),
        "purpose": "synthetic-training",
        "generator": GeneratorInfo(kind="ddpm"),
        "thresholds": thresholds(),
    }
    fields.update(overrides)
    return DataCard(**fields)


def full_card(rng: np.random.Generator, expectations: list[ExpectationsSummary]) -> DataCard:
    n = 400
    return base_card(
        counts=Counts(
            sources_total=3000, eligible_subjects=812, eligible_records=2436,
            excluded_by_reason={"not_consented": 301, "revoked": 88, "expired": 175},
            shards=4, records_per_shard=[611, 602, 617, 606], candidates_generated=431,
            flagged=31, replaced=31, published_per_label={"0": 200, "1": 200},
        ),
        generator=GeneratorInfo(kind="ddpm", preset="small", image_size=SIZE, epochs=12,
                                sampling_steps=25, dp_epsilon=8.0, dp_delta=1e-5,
                                model_versions=["shard0-v1", "shard1-v1"]),
        distances={
            "phash_distance": DistanceDistribution(values=rng.integers(5, 40, n).tolist()),
            "pixel_l2": DistanceDistribution(values=rng.uniform(0.35, 1.4, n).tolist()),
            "patch_l2": DistanceDistribution(values=rng.uniform(0.5, 2.5, n).tolist()),
            "embedding_cosine": DistanceDistribution(
                bin_edges=np.linspace(-1, 1, 41).tolist(), counts=[0] * 20 + [21] * 19 + [1],
            ),
        },
        calibration=CalibrationRates(
            detection_rate={"crop": 0.91, "flip": 1.0, "noise": 0.985, "brightness": 0.97,
                            "jpeg": 0.995},
            false_positive_rate=0.012, n_positives=500, n_negatives=500,
        ),
        privacy=PrivacyFigures(dcr_closer_to_train_share=0.512, dcr_ratio=1.07,
                               n_synthetic=400, n_train=2000, n_holdout=436,
                               membership_auc=0.531),
        utility=UtilityFigures(tstr_accuracy=0.81, trtr_accuracy=0.93, n_test=436,
                               classifier="small CNN, 3 epochs"),
        expectations=expectations,
        notices=["Subjects and consent are SIMULATED (demo on Br35H)."],
    )


def samples(rng: np.random.Generator, n: int = 12) -> tuple[list[np.ndarray], list[int]]:
    images = [rng.integers(0, 256, SIZE[::-1], dtype=np.uint8) for _ in range(n)]
    return images, [i % 2 for i in range(n)]


def md_links(md: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", md)


def test_full_card_renders_every_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    release = tmp_path / "v0003"
    report = validate_manifest(make_manifest(), expected_columns=COLUMNS, labels=LABELS,
                               image_size=SIZE, thresholds=THRESHOLDS,
                               docs_dir=release / "expectations")
    summary = ExpectationsSummary.from_report(report, release)
    assert summary.docs_link == "expectations/release_manifest/index.html"
    card = full_card(rng, [summary])
    images, labels = samples(rng)

    md_path, html_path = render_data_card(card, release, sample_images=images,
                                          sample_labels=labels)
    assert md_path == release / "data_card.md" and html_path == release / "data_card.html"
    md, page = md_path.read_text(), html_path.read_text()

    # one histogram per metric, plus the sample grid; all real PNGs
    hists = sorted((release / "card").glob("hist_*.png"))
    assert [p.name for p in hists] == [f"hist_{m}.png" for m in sorted(THRESHOLDS)]
    for png in [*hists, release / "card" / "samples.png"]:
        with Image.open(png) as im:
            im.load()
            assert im.format == "PNG" and im.width > 100
            assert not im.text  # no text chunks (no "Software" tag either)
    # the markdown's links all resolve inside the release (docs included)
    links = md_links(md)
    assert len(links) == len(THRESHOLDS) + 2
    for link in links:
        assert (release / link).is_file(), link

    for text in (md, html.unescape(page)):
        assert HEAD_HASH in text
        assert "1234" in text and "synthetic-training" in text
        for expected in ["> 4", "> 0.3", "> 0.4", "< 0.95",  # safe side per metric
                         "51.2 %", "1.07", "0.531",          # DCR share, ratio, MIA AUC
                         "81.0 %", "93.0 %",                 # TSTR, TRTR
                         "91.0 %", "1.2 %",                  # crop detection, FPR
                         "not_consented: 301", "revoked: 88", "expired: 175",
                         "0: 611, 1: 602, 2: 617, 3: 606", "0: 200, 1: 200",
                         "ε = 8", "SIMULATED", "release_manifest"]:
            assert expected in text, expected
        assert NOT_COMPUTED not in text  # every figure was given


def test_html_stands_alone_with_the_same_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images, labels = samples(rng, 5)
    _, html_path = render_data_card(full_card(rng, []), tmp_path, sample_images=images,
                                    sample_labels=labels)
    page = html_path.read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(sources) == len(THRESHOLDS) + 1
    on_disk = {p.read_bytes() for p in (tmp_path / "card").glob("*.png")}
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data in on_disk
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    assert not re.search(r'(src|href)="(/|file:|https?:)', page)


def test_histogram_draws_the_threshold(tmp_path: Path) -> None:
    card = base_card(distances={"pixel_l2": DistanceDistribution(values=[0.6, 0.8, 1.0])})
    render_data_card(card, tmp_path, sample_images=[], sample_labels=[])
    pixels = np.asarray(Image.open(tmp_path / "card" / "hist_pixel_l2.png").convert("RGB"))
    line = np.all(np.abs(pixels.astype(int) - THRESHOLD_RED) <= 8, axis=-1)
    columns = np.flatnonzero(line.sum(axis=0) > 20)  # a vertical line, not legend specks
    assert columns.size >= 1


def test_missing_figures_render_as_not_computed(tmp_path: Path) -> None:
    card = base_card()  # no counts, no distances, no calibration, privacy or utility
    md_path, html_path = render_data_card(card, tmp_path, sample_images=[], sample_labels=[])
    md, page = md_path.read_text(), html_path.read_text()
    for label in ["Membership-inference AUC", "TSTR accuracy", "TRTR accuracy",
                  "DCR ratio", "Eligible subjects", "Calibration", "Shards (K)"]:
        assert re.search(re.escape(label) + r"[^<]*</td><td class=\"nc\">not computed</td>",
                         page), label
        assert re.search(re.escape(label) + r"[^|]*\| not computed \|", md), label
    assert "none (trained without differential privacy)" in page
    assert not list((tmp_path / "card").glob("*.png"))
    assert md_links(md) == []
    assert HEAD_HASH in page


def test_partial_figures_mix_values_and_not_computed(tmp_path: Path) -> None:
    card = base_card(
        privacy=PrivacyFigures(dcr_closer_to_train_share=0.5, membership_auc=None),
        utility=UtilityFigures(tstr_accuracy=0.77),
        distances={"phash_distance": DistanceDistribution(values=[3, 12, 20])},
    )
    _, html_path = render_data_card(card, tmp_path, sample_images=[], sample_labels=[])
    page = html_path.read_text()
    assert "50.0 %" in page and "77.0 %" in page
    assert re.search(r"Membership-inference AUC</td><td class=\"nc\">not computed", page)
    assert re.search(r"TRTR accuracy[^<]*</td><td class=\"nc\">not computed", page)
    # a published value on the flagged side is printed, not hidden
    assert "WARNING: 1 value(s) on the flagged side" in page
    assert [p.name for p in (tmp_path / "card").glob("hist_*.png")] == [
        "hist_phash_distance.png"]


def test_rerender_drops_stale_plots(tmp_path: Path) -> None:
    two = base_card(distances={"pixel_l2": DistanceDistribution(values=[0.5]),
                               "patch_l2": DistanceDistribution(values=[0.9])})
    render_data_card(two, tmp_path, sample_images=[], sample_labels=[])
    one = base_card(distances={"pixel_l2": DistanceDistribution(values=[0.5])})
    render_data_card(one, tmp_path, sample_images=[], sample_labels=[])
    assert [p.name for p in (tmp_path / "card").glob("hist_*.png")] == ["hist_pixel_l2.png"]


def test_sample_grid_layout_and_image_kinds(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    kinds = [
        rng.integers(0, 256, (32, 32), dtype=np.uint8),
        rng.integers(0, 256, (32, 32, 1), dtype=np.uint8),
        rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        rng.integers(0, 256, (32, 32, 4), dtype=np.uint8),
    ]
    images = kinds * 3  # 12 images: 8 per row, 2 rows
    render_data_card(base_card(), tmp_path, sample_images=images, sample_labels=list(range(12)))
    with Image.open(tmp_path / "card" / "samples.png") as grid:
        # 32 px tiles upscaled 3x to 96, 4 px gaps, 16 px captions
        assert grid.size == (8 * (96 + 4) + 4, 2 * (96 + 16 + 4) + 4)
        assert grid.mode == "RGB"
        tile = np.asarray(grid)[4:100, 4:100]
    assert np.array_equal(tile[::3, ::3, 0], kinds[0])  # first tile is the first image

    with pytest.raises(ConfigError):
        render_data_card(base_card(), tmp_path, sample_images=kinds, sample_labels=[0])
    with pytest.raises(ConfigError):
        render_data_card(base_card(), tmp_path,
                         sample_images=[np.zeros((8, 8), dtype=np.float32)], sample_labels=[0])


def test_card_model_has_no_room_for_identifiers() -> None:
    with pytest.raises(ValidationError):
        base_card(source_ids=["SRC-1"])  # extra fields are forbidden
    with pytest.raises(ValidationError):
        Counts(sources_total=3, subject_ids=["S1"])
    with pytest.raises(ValidationError):
        ExpectationsSummary(suite_name="s", success=True, evaluated=1, successful=1,
                            docs_link="/srv/data/releases/v0001/expectations/index.html")
    with pytest.raises(ValidationError):
        ExpectationsSummary(suite_name="s", success=True, evaluated=1, successful=1,
                            docs_link="../internal/index.html")
    with pytest.raises(ValidationError):
        base_card(created_at=datetime(2025, 1, 1))  # naive time
    with pytest.raises(ValidationError):
        base_card(consent=ConsentSnapshotHead(seq=1, hash="xyz",
                                              snapshot_time=datetime.now(UTC)))
    with pytest.raises(ValidationError):  # a distance needs its threshold drawn
        base_card(thresholds={}, distances={"pixel_l2": DistanceDistribution(values=[1.0])})
    with pytest.raises(ValidationError):  # metric names become file names
        base_card(thresholds={"../x": AuditThreshold(direction="min", value=1.0)})
    with pytest.raises(ValidationError):
        Counts(shards=4, records_per_shard=[1, 2, 3])


def test_docs_outside_the_release_get_no_link(tmp_path: Path) -> None:
    from validation.release.expectations import ExpectationReport

    report = ExpectationReport(suite_name="release_audit", success=True, evaluated=3,
                               successful=3, failed=[],
                               docs_index=tmp_path / "elsewhere" / "index.html")
    summary = ExpectationsSummary.from_report(report, tmp_path / "v0001")
    assert summary.docs_link is None and summary.evaluated == 3
