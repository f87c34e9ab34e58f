"""Running a release suite: an ephemeral Great Expectations context, reports, a page.

Speed: importing GE costs seconds, so it is imported on first use only (importing this
module is cheap, e.g. when Dagster loads definitions). Each distinct suite (same
expectations, same parameters) gets one ephemeral context, data asset, suite and
validation definition, cached for the life of the process. Nothing is fetched from the
network and GE's progress bars and analytics are off.

What ships: ``docs_dir/<suite name>/index.html`` (``release_manifest``,
``release_audit``), our own validation page (`page`), not GE's Data Docs: those load
their scripts and styles from CDNs, which GE does not ship, and show nothing offline.
The page lists every expectation (column, what it expects, passed, observed value) of
the run that let the release through; ``results.json`` beside it is GE's own result.
An expectation that could not be evaluated carries a traceback with this server's file
paths: it is scrubbed to one path-free line before anything is written.

Both entry points pass the table through `guards.guard_frame` before GE sees it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from validation.release.expectations.guards import guard_frame
from validation.release.expectations.page import expected_text, short, write_page
from validation.release.expectations.suites import (
    AUDIT_SUITE,
    DEFAULT_GENERATOR_KINDS,
    IMAGE_ID_PATTERN,
    MANIFEST_SUITE,
    Spec,
    Thresholds,
    audit_specs,
    manifest_specs,
)

_PARTIAL_UNEXPECTED_COUNT = 10
_MAX_CACHED_SUITES = 8


class FailedExpectation(BaseModel):
    """One expectation that did not hold, in words short enough for a log line."""

    model_config = ConfigDict(frozen=True)

    type: str
    """GE's snake-case expectation type, e.g. ``expect_column_values_to_be_unique``."""
    column: str | None
    """The column it was about; None for table-level expectations."""
    reason: str
    """Counts or observed value; never sample values."""


class ExpectationOutcome(BaseModel):
    """One expectation of a run, passed or not: a row of the validation page and card."""

    model_config = ConfigDict(frozen=True)

    type: str
    column: str | None
    expected: str
    """What it asks for, from its arguments (the column aside)."""
    success: bool
    observed: str
    """The observed value, or "k of n unexpected"; "could not be evaluated: ..." if so."""


class ExpectationReport(BaseModel):
    """What a suite found: enough for an asset check's metadata and a data card."""

    model_config = ConfigDict(frozen=True)

    suite_name: str
    success: bool
    evaluated: int
    successful: int
    failed: list[FailedExpectation]
    docs_index: Path | None
    """This suite's validation page (``index.html``), when a docs folder was given."""
    results: list[ExpectationOutcome] = []
    """Every expectation evaluated, in the suite's order."""

    def failed_types(self) -> set[str]:
        """The types of the failed expectations (handy in checks and tests)."""
        return {f.type for f in self.failed}


# --- GE machinery, imported and built on first use -------------------------------------

_LOCK = threading.RLock()
_RUNNERS: OrderedDict[str, _Runner] = OrderedDict()


def _signature(suite_name: str, specs: list[Spec]) -> str:
    blob = json.dumps([suite_name, specs], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class _Runner:
    """One suite in its own ephemeral context."""

    def __init__(self, suite_name: str, specs: list[Spec]) -> None:
        with warnings.catch_warnings():  # GE's own imports of deprecated stdlib modules
            warnings.simplefilter("ignore", DeprecationWarning)
            import great_expectations as gx
            import great_expectations.expectations as gxe
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

        self.suite_name = suite_name
        config = DataContextConfig(
            # No default site: the ephemeral default would write docs to a temp folder.
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        self.context = gx.get_context(project_config=config, mode="ephemeral")
        source = self.context.data_sources.add_pandas("release")
        asset = source.add_dataframe_asset(suite_name)
        batch = asset.add_batch_definition_whole_dataframe("whole_table")
        suite = self.context.suites.add(gx.ExpectationSuite(name=suite_name))
        for class_name, kwargs in specs:
            suite.add_expectation(getattr(gxe, class_name)(**kwargs))
        self.validation = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite_name}_validation", data=batch, suite=suite)
        )
        self.checkpoint = self.context.checkpoints.add(gx.Checkpoint(
            name=f"{suite_name}_checkpoint",
            validation_definitions=[self.validation],
            actions=[],  # the page is written after scrubbing, see `run`
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": _PARTIAL_UNEXPECTED_COUNT,
            },
        ))

    def run(self, frame: pd.DataFrame, site_dir: Path | None) -> ExpectationReport:
        """Validate `frame`; with `site_dir`, write that suite's validation page there.

        Tracebacks of expectations that could not be evaluated are scrubbed first (they
        hold this server's file paths), so neither the page nor ``results.json`` has one.
        """
        store = self.context.validation_results_store
        for old in store.list_keys():  # a long-lived process keeps no old runs in memory
            store.remove_key(old)
        result = self.checkpoint.run(batch_parameters={"dataframe": frame})
        ((_, suite_result),) = result.run_results.items()
        _scrub(suite_result)
        report = _report(self.suite_name, suite_result, None)
        if site_dir is None:
            return report
        index = write_page(site_dir, suite_name=report.suite_name, success=report.success,
                           evaluated=report.evaluated, successful=report.successful,
                           rows=report.results, result_json=suite_result.to_json_dict())
        return report.model_copy(update={"docs_index": index})


_PATHLIKE = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s'\"<>:,)]+){2,}")


def _exception_message(info: Any) -> str | None:
    """The first exception message in GE's flat or per-metric exception_info, if any."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "error")
    for value in info.values():
        if isinstance(value, dict) and (value.get("raised_exception")
                                        or value.get("exception_message")):
            return str(value.get("exception_message") or "error")
    return None


def _scrub(suite_result: Any) -> bool:
    """Replace tracebacks by one short, path-free line; True when anything changed."""
    changed = False
    for res in suite_result.results:
        message = _exception_message(res.exception_info)
        if message is None:
            continue
        line = _PATHLIKE.sub("<path>", message.strip().splitlines()[0] if message.strip()
                             else "error")[:200]
        res.exception_info = {
            "raised_exception": True,
            "exception_message": line,
            "exception_traceback": None,
        }
        changed = True
    return changed


def _reason(res: Any) -> str:
    """A short, value-free account of why one expectation failed."""
    message = _exception_message(getattr(res, "exception_info", None))
    if message is not None:
        return f"could not be evaluated: {(message.splitlines() or ['error'])[0][:160]}"
    result = res.result or {}
    if "unexpected_count" in result:
        count = result.get("unexpected_count")
        total = result.get("element_count")
        pct = result.get("unexpected_percent")
        text = f"{count} of {total} values unexpected"
        if isinstance(pct, (int, float)):
            text += f" ({pct:.1f}% of non-null)"
        return text
    details = result.get("details") or {}
    mismatched = details.get("mismatched") if isinstance(details, dict) else None
    if mismatched:
        parts = []
        if mismatched.get("unexpected"):
            parts.append(f"unexpected columns {sorted(map(str, mismatched['unexpected']))}")
        if mismatched.get("missing"):
            parts.append(f"missing columns {sorted(map(str, mismatched['missing']))}")
        return "; ".join(parts)
    if "observed_value" in result:
        return f"observed {str(result['observed_value'])[:160]}"
    return "failed"


def _observed(res: Any) -> str:
    """The observed value of one expectation, passed or not, in one short line."""
    message = _exception_message(getattr(res, "exception_info", None))
    if message is not None:
        return f"could not be evaluated: {short((message.splitlines() or ['error'])[0], 160)}"
    result = res.result or {}
    if "unexpected_count" in result:
        text = f"{result.get('unexpected_count')} of {result.get('element_count')} unexpected"
        sample = result.get("partial_unexpected_list") or []
        if sample:
            text += f" (e.g. {', '.join(short(v, 40) for v in sample[:5])})"
        return text
    if "observed_value" in result:
        return short(result["observed_value"], 160)
    return "—"


def _report(suite_name: str, suite_result: Any, index: Path | None) -> ExpectationReport:
    failed = []
    outcomes = []
    for res in suite_result.results:
        config = res.expectation_config
        column = config.kwargs.get("column")
        column = str(column) if column is not None else None
        outcomes.append(ExpectationOutcome(
            type=config.type, column=column, expected=expected_text(dict(config.kwargs)),
            success=bool(res.success), observed=_observed(res)))
        if not res.success:
            failed.append(FailedExpectation(type=config.type, column=column, reason=_reason(res)))
    stats = suite_result.statistics
    return ExpectationReport(
        suite_name=suite_name,
        success=bool(suite_result.success),
        evaluated=int(stats["evaluated_expectations"]),
        successful=int(stats["successful_expectations"]),
        failed=failed,
        docs_index=index,
        results=outcomes,
    )


def _run(suite_name: str, specs: list[Spec], frame: pd.DataFrame,
         docs_dir: Path | None) -> ExpectationReport:
    key = _signature(suite_name, specs)
    with _LOCK:  # GE contexts are not thread-safe; one validation at a time per process
        runner = _RUNNERS.get(key)
        if runner is None:
            runner = _Runner(suite_name, specs)
            _RUNNERS[key] = runner
            while len(_RUNNERS) > _MAX_CACHED_SUITES:
                _RUNNERS.popitem(last=False)
        else:
            _RUNNERS.move_to_end(key)
        site_dir = None
        if docs_dir is not None:
            site_dir = Path(docs_dir).resolve() / suite_name
            site_dir.mkdir(parents=True, exist_ok=True)
        return runner.run(frame, site_dir)


# --- entry points ----------------------------------------------------------------------


def validate_manifest(
    manifest: pd.DataFrame,
    *,
    expected_columns: Sequence[str],
    labels: Collection[int | str],
    image_size: tuple[int, int],
    thresholds: Thresholds,
    docs_dir: Path | None,
    generator_kinds: Collection[str] = DEFAULT_GENERATOR_KINDS,
    image_id_pattern: str = IMAGE_ID_PATTERN,
    forbidden_ids: Collection[str] | None = None,
) -> ExpectationReport:
    """Run the manifest suite on the table a release publishes.

    `image_size` is (width, height) as the ``width``/``height`` columns hold it.
    `thresholds` maps each audit-distance column to its safe side (see `Direction`).
    `docs_dir`: the release's expectations folder; the suite's validation page goes to
    ``docs_dir/release_manifest/`` (None: no docs). `forbidden_ids`: the caller's
    internal source/subject/record ids; any cell equal to one is refused.

    Raises IdentifyingDataError (before GE runs) for identifying columns or values,
    ConfigError for unusable settings. A failing suite is a report, not an exception:
    the release check decides.
    """
    specs = manifest_specs(
        expected_columns=expected_columns, labels=labels, image_size=image_size,
        thresholds=thresholds, generator_kinds=generator_kinds,
        image_id_pattern=image_id_pattern,
    )
    frame = guard_frame(manifest, "manifest", forbidden_ids)
    return _run(MANIFEST_SUITE, specs, frame, docs_dir)


def validate_audit(
    audit: pd.DataFrame,
    *,
    thresholds: Thresholds,
    docs_dir: Path | None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    forbidden_ids: Collection[str] | None = None,
) -> ExpectationReport:
    """Run the audit suite on the audit rows of a release (nearest-source ids dropped).

    No shipped candidate may be flagged, and every metric in `thresholds` must be
    present, within its plausible range (`DEFAULT_METRIC_RANGES`, overridable by
    `ranges`) and on its safe side. Every row is held to this: the table holds the
    images that ship, not the candidates replaced. Docs go to ``docs_dir/release_audit/``.
    """
    frame = guard_frame(audit, "audit", forbidden_ids)
    specs = audit_specs(thresholds=thresholds, ranges=ranges)
    return _run(AUDIT_SUITE, specs, frame, docs_dir)
