"""Great Expectations suites on the manifest and audit tables, and the validation pages that ship.

Real DataFrames through real GE checkpoints; each bad table breaks one thing and must
fail on exactly the expectation that guards it.
"""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from consentgen.errors import ConfigError, ConsentgenError
from tests.validation.release.conftest import COLUMNS, LABELS, SIZE, THRESHOLDS, make_audit, make_manifest
from validation.release.expectations import (
    AUDIT_SUITE,
    MANIFEST_SUITE,
    ExpectationReport,
    IdentifyingDataError,
    thresholds_from_flag_rules,
    validate_audit,
    validate_manifest,
)


def check_manifest(frame: pd.DataFrame, docs_dir: Path | None = None, **kw) -> ExpectationReport:
    args = {"expected_columns": COLUMNS, "labels": LABELS, "image_size": SIZE,
            "thresholds": THRESHOLDS, "docs_dir": docs_dir}
    args.update(kw)
    return validate_manifest(frame, **args)


def failures(report: ExpectationReport) -> set[tuple[str, str | None]]:
    return {(f.type, f.column) for f in report.failed}


# --- the manifest suite --------------------------------------------------------------


def test_good_manifest_passes_and_writes_docs(manifest: pd.DataFrame, tmp_path: Path) -> None:
    docs = tmp_path / "expectations"
    report = check_manifest(manifest, docs)
    assert report.success, report.failed
    assert report.suite_name == MANIFEST_SUITE
    assert report.failed == []
    assert report.evaluated == report.successful >= 20
    assert report.docs_index == (docs / MANIFEST_SUITE / "index.html").resolve()
    assert report.docs_index.is_file()
    assert sorted(p.name for p in (docs / MANIFEST_SUITE).iterdir()) == ["index.html",
                                                                          "results.json"]
    assert len(report.results) == report.evaluated and all(r.success for r in report.results)
    rows = {(r.type, r.column): r for r in report.results}
    assert rows[("expect_table_row_count_to_be_between", None)].observed == "40"
    assert rows[("expect_column_values_to_be_unique", "image_id")].observed == "0 of 40 unexpected"
    assert "min_value 0.3" in rows[("expect_column_values_to_be_between", "pixel_l2")].expected
    result = json.loads((docs / MANIFEST_SUITE / "results.json").read_text())
    assert result["success"] is True and len(result["results"]) == report.evaluated


@pytest.mark.parametrize(
    "column", ["subject_id", "source_path", "record_id", "PatientName", "file_path", "Sources"]
)
def test_identifying_column_is_refused_before_ge(
    manifest: pd.DataFrame, tmp_path: Path, column: str
) -> None:
    bad = manifest.assign(**{column: [f"S{i:04d}" for i in range(len(manifest))]})
    docs = tmp_path / "expectations"
    with pytest.raises(IdentifyingDataError) as err:
        check_manifest(bad, docs)
    assert isinstance(err.value, ConsentgenError)
    assert err.value.columns == [column]
    assert not docs.exists()  # refused before GE wrote anything


def test_identifying_index_name_is_refused(manifest: pd.DataFrame) -> None:
    indexed = manifest.set_index(pd.Index([f"src-{i}" for i in range(len(manifest))],
                                          name="source_id"))
    with pytest.raises(IdentifyingDataError):
        check_manifest(indexed)


def test_internal_ids_in_cells_are_refused_without_echoing_them(
    manifest: pd.DataFrame,
) -> None:
    secret = "subject-7f3a-internal"
    bad = manifest.copy()
    bad["model_version"] = bad["model_version"].astype(object)
    bad.loc[5, "model_version"] = secret
    with pytest.raises(IdentifyingDataError) as err:
        check_manifest(bad, forbidden_ids={secret, "other"})
    assert err.value.columns == ["model_version"]
    assert secret not in str(err.value)
    # the same frame without the planted id passes the guard and the suite
    assert check_manifest(manifest, forbidden_ids={secret}).success


def test_duplicate_image_id_fails_uniqueness(manifest: pd.DataFrame) -> None:
    bad = manifest.copy()
    bad.loc[3, "image_id"] = bad.loc[7, "image_id"]
    report = check_manifest(bad)
    assert not report.success
    assert failures(report) == {("expect_column_values_to_be_unique", "image_id")}
    assert report.failed[0].reason.startswith("2 of 40 values unexpected")


def test_non_random_image_id_fails_regex(manifest: pd.DataFrame) -> None:
    bad = manifest.copy()
    bad.loc[0, "image_id"] = "img_00001"
    report = check_manifest(bad)
    assert failures(report) == {("expect_column_values_to_match_regex", "image_id")}


def test_label_outside_the_set_fails(manifest: pd.DataFrame) -> None:
    bad = manifest.copy()
    bad.loc[2, "label"] = 7
    report = check_manifest(bad)
    assert failures(report) == {("expect_column_values_to_be_in_set", "label")}


def test_wrong_image_size_fails(manifest: pd.DataFrame) -> None:
    bad = manifest.copy()
    bad.loc[1, "height"] = 64
    report = check_manifest(bad)
    assert failures(report) == {("expect_column_values_to_be_between", "height")}


def test_unknown_generator_and_missing_model_version_fail(manifest: pd.DataFrame) -> None:
    bad = manifest.copy()
    bad.loc[0, "generator"] = "gan"
    bad.loc[1, "model_version"] = None
    report = check_manifest(bad)
    assert failures(report) == {
        ("expect_column_values_to_be_in_set", "generator"),
        ("expect_column_values_to_not_be_null", "model_version"),
    }


@pytest.mark.parametrize(
    ("metric", "value"),
    [("phash_distance", 4), ("pixel_l2", 0.12), ("embedding_cosine", 0.97)],
)
def test_distance_on_the_flagged_side_fails(
    manifest: pd.DataFrame, metric: str, value: float
) -> None:
    bad = manifest.copy()
    bad.loc[9, metric] = value  # phash 4 equals the threshold: the audit flags equality
    report = check_manifest(bad)
    assert failures(report) == {("expect_column_values_to_be_between", metric)}


def test_missing_distance_fails_not_null(manifest: pd.DataFrame) -> None:
    bad = manifest.copy()
    bad.loc[4, "pixel_l2"] = float("nan")
    report = check_manifest(bad)
    assert failures(report) == {("expect_column_values_to_not_be_null", "pixel_l2")}


def test_empty_manifest_fails_row_count(manifest: pd.DataFrame) -> None:
    report = check_manifest(manifest.iloc[0:0])
    assert failures(report) == {("expect_table_row_count_to_be_between", None)}


def test_extra_column_fails_exact_column_set(manifest: pd.DataFrame) -> None:
    report = check_manifest(manifest.assign(shard=0))
    assert failures(report) == {("expect_table_columns_to_match_set", None)}
    assert "shard" in report.failed[0].reason


def test_missing_column_fails_and_docs_carry_no_traceback(
    manifest: pd.DataFrame, tmp_path: Path
) -> None:
    report = check_manifest(manifest.drop(columns=["width"]), tmp_path / "docs")
    by_type = {(f.type, f.column): f.reason for f in report.failed}
    assert "missing columns ['width']" in by_type[("expect_table_columns_to_match_set", None)]
    assert by_type[("expect_column_values_to_be_between", "width")].startswith(
        "could not be evaluated")
    pages = "\n".join(p.read_text() for p in (tmp_path / "docs").rglob("*") if p.is_file())
    assert "width" in pages
    for leak in ["Traceback", "site-packages", ".venv", str(Path.cwd())]:
        assert leak not in pages, leak


def test_settings_that_cannot_work_are_config_errors(manifest: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="lacks required"):
        check_manifest(manifest, expected_columns=[c for c in COLUMNS if c != "patch_l2"])
    with pytest.raises(ConfigError, match="direction"):
        check_manifest(manifest, thresholds={**THRESHOLDS, "pixel_l2": ("above", 0.3)})
    with pytest.raises(IdentifyingDataError):
        check_manifest(manifest, expected_columns=[*COLUMNS, "subject_id"])


def test_thresholds_follow_the_audit_flag_rules() -> None:
    got = thresholds_from_flag_rules(
        {"phash_distance": 4, "embedding_cosine": 0.95},
        {"phash_distance": "<=", "embedding_cosine": ">="},
    )
    assert got == {"phash_distance": ("min", 4.0), "embedding_cosine": ("max", 0.95)}
    with pytest.raises(ConfigError):
        thresholds_from_flag_rules({"pixel_l2": 0.3}, {})


# --- the audit suite -----------------------------------------------------------------


def test_clean_audit_passes(audit: pd.DataFrame) -> None:
    report = validate_audit(audit, thresholds=THRESHOLDS, docs_dir=None)
    assert report.success, report.failed
    assert report.suite_name == AUDIT_SUITE
    assert report.docs_index is None


def test_flagged_row_fails(audit: pd.DataFrame) -> None:
    bad = audit.copy()
    bad.loc[2, "flagged"] = True
    report = validate_audit(bad, thresholds=THRESHOLDS, docs_dir=None)
    assert failures(report) == {("expect_column_values_to_be_in_set", "flagged")}


def test_distance_on_flagged_side_and_implausible_value_fail(
    audit: pd.DataFrame,
) -> None:
    bad = audit.copy()
    bad.loc[1, "embedding_cosine"] = 0.96  # flag says clean, distance says copy
    bad.loc[2, "pixel_l2"] = 5.0  # no standardised RMS can be this large
    report = validate_audit(bad, thresholds=THRESHOLDS, docs_dir=None)
    assert failures(report) == {
        ("expect_column_values_to_be_between", "embedding_cosine"),
        ("expect_column_values_to_be_between", "pixel_l2"),
    }


def test_audit_with_source_columns_is_refused(audit: pd.DataFrame) -> None:
    with pytest.raises(IdentifyingDataError):
        validate_audit(audit.assign(phash_source_id="src-1"), thresholds=THRESHOLDS,
                       docs_dir=None)


# --- the validation pages: what ships publicly ----------------------------------------


def test_data_docs_carry_no_planted_identifier(tmp_path: Path) -> None:
    manifest = make_manifest(seed=3)
    audit = make_audit(seed=4)
    planted = [f"SRC-{i:04d}-brain" for i in range(len(manifest))]
    subjects = [f"SUBJ-{i % 9:03d}-mri" for i in range(len(manifest))]
    internal = manifest.assign(source_id=planted, subject_id=subjects,
                               source_path=[f"/data/sources/{p}.png" for p in planted])
    # a failing manifest makes GE render sample unexpected values into the docs
    internal.loc[0, "image_id"] = internal.loc[1, "image_id"]
    internal.loc[2, "label"] = 5
    shipped = internal.drop(columns=["source_id", "subject_id", "source_path"])
    release = tmp_path / "releases" / "v0001"
    docs = release / "expectations"

    with pytest.raises(IdentifyingDataError):  # the internal table itself is refused
        check_manifest(internal, docs)
    manifest_report = check_manifest(shipped, docs, forbidden_ids=planted + subjects)
    audit_internal = audit.assign(phash_source_id=planted[: len(audit)])
    audit_report = validate_audit(audit_internal.drop(columns=["phash_source_id"]),
                                  thresholds=THRESHOLDS, docs_dir=docs)
    assert not manifest_report.success and audit_report.success

    files = [p for p in docs.rglob("*") if p.is_file()]
    text = "\n".join(p.read_text(errors="replace") for p in files if p.suffix in {".html", ".json"})
    assert manifest_report.docs_index is not None and audit_report.docs_index is not None
    assert manifest_report.docs_index.is_file() and audit_report.docs_index.is_file()
    # the page does show sample unexpected values (so the leak check below can bite) ...
    assert shipped.loc[0, "image_id"] in text
    # ... but nothing the caller's internal table held, nor where the release lives
    for ident in [*planted, *subjects, "/data/sources", str(tmp_path)]:
        assert ident not in text, ident
    for path in files:
        data = path.read_bytes()
        assert not any(p.encode() in data for p in planted), path
    # GE's tutorial GIFs and fonts are not shipped
    assert not [p for p in files if p.suffix in {".gif", ".otf"}]


def test_each_suite_has_its_own_page_showing_only_the_latest_run(tmp_path: Path) -> None:
    docs = tmp_path / "expectations"
    bad = make_manifest()
    bad.loc[0, "label"] = 9
    first = check_manifest(bad, docs)
    second = check_manifest(make_manifest(), docs)
    audit = validate_audit(make_audit(), thresholds=THRESHOLDS, docs_dir=docs)
    assert not first.success and second.success and audit.success
    assert first.docs_index == second.docs_index != audit.docs_index
    page = text_of(docs / MANIFEST_SUITE / "index.html")
    assert re.search(r"Status:\s+passed", page)  # the latest run, not the failed one
    assert "NO" not in page.split() and "e.g. 9" not in page
    assert f"{second.evaluated} of {second.evaluated} expectations met" in page
    audit_page = text_of(docs / AUDIT_SUITE / "index.html")
    assert AUDIT_SUITE in audit_page and MANIFEST_SUITE not in audit_page


def test_a_failed_expectation_shows_its_observed_value(tmp_path: Path) -> None:
    bad = make_manifest()
    bad.loc[0, "label"] = 9
    report = check_manifest(bad, tmp_path / "docs")
    page = text_of(report.docs_index)
    assert re.search(r"Status:\s+FAILED", page)
    row = next(r for r in report.results if not r.success)
    assert (row.type, row.column) == ("expect_column_values_to_be_in_set", "label")
    assert row.observed == "1 of 40 unexpected (e.g. 9)" and row.observed in page
    assert f"{report.successful} of {report.evaluated} expectations met" in page


class _Assets(HTMLParser):
    """Every URL a page would fetch to render: script src, link href, img/source src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        wanted = {"script": "src", "link": "href", "img": "src", "source": "src",
                  "iframe": "src", "embed": "src", "object": "data"}.get(tag)
        self.urls += [v or "" for k, v in attrs if k == wanted]


def test_the_shipped_page_needs_no_network(tmp_path: Path) -> None:
    docs = tmp_path / "release" / "expectations"
    check_manifest(make_manifest(), docs)
    validate_audit(make_audit(), thresholds=THRESHOLDS, docs_dir=docs)
    pages = sorted(docs.rglob("*.html"))
    assert [p.relative_to(docs).as_posix() for p in pages] == [
        f"{AUDIT_SUITE}/index.html", f"{MANIFEST_SUITE}/index.html"]
    for page in pages:
        text = page.read_text()
        parser = _Assets()
        parser.feed(text)
        assert parser.urls == [] and "script" not in parser.tags, page
        assert not re.search(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}", text), page  # not in CSS either
        assert "<table>" in text and "expect_column_values_to_not_be_null" in text
    # the page GE would have shipped needs the network: what this replaces
    assert not [p for p in docs.rglob("*") if p.is_file() and p.suffix in {".js", ".css", ".gif"}]


def text_of(page: Path | None) -> str:
    assert page is not None
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))
