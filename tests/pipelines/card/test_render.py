"""The data card files: real PNGs, both files from one view, 'not computed' where missing."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.card import (
    NOT_COMPUTED,
    DistanceDistribution,
    ExpectationsSummary,
    PrivacyFigures,
    UtilityFigures,
    render_data_card,
)
from pipelines.catalog.reasons import ExclusionReason
from tests.pipelines.card.conftest import HEAD_HASH, base_card, full_card, md_links, samples
from tests.validation.release.conftest import COLUMNS, LABELS, SIZE, THRESHOLDS, make_manifest
from validation.release.expectations import validate_manifest


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
                         f"{ExclusionReason.NO_RECORD}: 301", f"{ExclusionReason.WITHDRAWN}: 88",
                         f"{ExclusionReason.EXPIRED}: 175",
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


def _md_rows(md: str) -> list[tuple[str, ...]]:
    """Every table row of the Markdown, cells unescaped, header separators left out."""
    rows = []
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| |"):
            cells = re.split(r"(?<!\\) \| ", line[2:-2])
            rows.append(tuple(c.replace("\\|", "|") for c in cells))
    return rows


def _html_rows(page: str) -> list[tuple[str, ...]]:
    """Every table row of the HTML (header cells too), cells unescaped."""
    return [tuple(html.unescape(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row))
            for row in re.findall(r"<tr>(.*?)</tr>", page)]


def test_both_files_print_the_same_view(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    card = full_card(rng, [])
    md_path, html_path = render_data_card(card, tmp_path / "a", sample_images=[],
                                          sample_labels=[])
    md_rows, html_rows = _md_rows(md_path.read_text()), _html_rows(html_path.read_text())
    assert len(md_rows) > 40
    assert md_rows == html_rows

    # one value changed on the model shows, the same, in both files
    changed = card.model_copy(update={
        "counts": card.counts.model_copy(update={"candidates_generated": 98_765}),
        "purpose": "another | purpose",
    })
    md_path, html_path = render_data_card(changed, tmp_path / "b", sample_images=[],
                                          sample_labels=[])
    for rows in (_md_rows(md_path.read_text()), _html_rows(html_path.read_text())):
        assert ("Candidates generated", "98,765") in rows
        assert ("Candidates generated", "431") not in rows
        assert ("Purpose", "another | purpose") in rows
    assert "another \\| purpose" in md_path.read_text()  # stays in its cell


def test_html_escapes_what_the_card_says(tmp_path: Path) -> None:
    from validation.release.expectations import FailedExpectation

    notice = '<script>alert("card")</script> & <b>bold</b>'
    failed = ExpectationsSummary(
        suite_name="release_manifest", success=False, evaluated=2, successful=1,
        failed=[FailedExpectation(type="expect_column_values_to_be_between", column="label",
                                  reason="<img src=x onerror=alert(1)>")])
    card = base_card(notices=[notice], expectations=[failed])
    md_path, html_path = render_data_card(card, tmp_path, sample_images=[], sample_labels=[])
    page = html_path.read_text()
    assert "<script" not in page and "<b>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;card&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert notice in html.unescape(page)
    assert notice in md_path.read_text()  # the Markdown prints the text as given


def test_templates_are_found_from_another_working_directory(tmp_path: Path) -> None:
    import pipelines

    repo = Path(pipelines.__file__).resolve().parent.parent
    script = (
        "from datetime import UTC, datetime\n"
        "from pathlib import Path\n"
        "from pipelines.card import (AuditThreshold, ConsentSnapshotHead, DataCard,\n"
        "                            GeneratorInfo, render_data_card)\n"
        "t = datetime(2025, 1, 2, tzinfo=UTC)\n"
        "card = DataCard(version='v0042', created_at=t, purpose='p',\n"
        "                consent=ConsentSnapshotHead(seq=1, hash='a' * 64, snapshot_time=t),\n"
        "                generator=GeneratorInfo(kind='ddpm'), expiry_policy='keep',\n"
        "                thresholds={'pixel_l2': AuditThreshold(direction='min', value=0.3)})\n"
        "render_data_card(card, Path('out'), sample_images=[], sample_labels=[])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Data card — release v0042" in (tmp_path / "out" / "data_card.md").read_text()
    assert "<h1>Data card — release v0042</h1>" in (tmp_path / "out" / "data_card.html").read_text()


def test_the_templates_ship_with_the_package() -> None:
    import pipelines.card

    repo = Path(pipelines.card.__file__).resolve().parents[2]
    setuptools = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["pipelines.card"]
    package = Path(pipelines.card.__file__).parent
    shipped = {p.name for pattern in patterns for p in package.glob(pattern)}
    assert shipped >= {"data_card.md.j2", "data_card.html.j2"}
