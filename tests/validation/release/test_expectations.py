"""Great Expectations suites on the manifest and audit tables, and their public Data Docs.

Real DataFrames through real GE checkpoints; each bad table breaks one thing and must
fail on exactly the expectation that guards it.
"""

from __future__ import annotations

import html
import re
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
    pages = list((docs / MANIFEST_SUITE / "validations").rglob("*.html"))
    assert len(pages) == 1


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
    pages = "\n".join(p.read_text() for p in (tmp_path / "docs").rglob("*.html"))
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


# --- Data Docs: what ships publicly ----------------------------------------------------


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
    text = "\n".join(p.read_text(errors="replace") for p in files if p.suffix == ".html")
    assert manifest_report.docs_index is not None and audit_report.docs_index is not None
    assert manifest_report.docs_index.is_file() and audit_report.docs_index.is_file()
    # GE does render the unexpected values (so the leak check below can bite) ...
    assert shipped.loc[0, "image_id"] in text
    # ... but nothing the caller's internal table held, nor where the release lives
    for ident in [*planted, *subjects, "/data/sources", str(tmp_path)]:
        assert ident not in text, ident
    for path in files:
        data = path.read_bytes()
        assert not any(p.encode() in data for p in planted), path
    # GE's tutorial GIFs and fonts are not shipped
    assert not [p for p in files if p.suffix in {".gif", ".otf"}]


def test_each_suite_has_its_own_site_showing_only_the_latest_run(tmp_path: Path) -> None:
    docs = tmp_path / "expectations"
    bad = make_manifest()
    bad.loc[0, "label"] = 9
    first = check_manifest(bad, docs)
    second = check_manifest(make_manifest(), docs)
    validate_audit(make_audit(), thresholds=THRESHOLDS, docs_dir=docs)
    assert not first.success and second.success
    manifest_pages = list((docs / MANIFEST_SUITE / "validations").rglob("*.html"))
    audit_pages = list((docs / AUDIT_SUITE / "validations").rglob("*.html"))
    assert len(manifest_pages) == 1 and len(audit_pages) == 1
    index = (docs / MANIFEST_SUITE / "index.html").read_text()
    links = set(re.findall(r"validations/[A-Za-z0-9_./\-]+?\.html", index))
    assert len(links) == 1 and (docs / MANIFEST_SUITE / links.pop()).is_file()
    page = html.unescape(re.sub(r"<[^>]+>", " ", manifest_pages[0].read_text()))
    assert re.search(r"Status:\s+Succeeded", page)  # the latest run, not the failed one
