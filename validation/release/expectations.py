"""Great Expectations suites on what a release ships: the manifest and the audit table.

Two suites guard the two tables a release publishes. The manifest suite pins the exact
column set (so a column naming a source, subject or record can never slip into a public
file), random image ids, allowed labels, the release image size, known generator kinds,
and every audit distance on the safe side of its threshold. The audit suite checks that
no candidate that ships was flagged, and that every distance is present and plausible.

Data Docs ship publicly with each release (DESIGN.md, "Releases and withdrawal"), and GE
renders samples of unexpected values into them. So, before GE sees anything, both entry
points refuse (``IdentifyingDataError``) a frame with a column or index whose name
contains ``subject``, ``source``, ``record``, ``patient`` or ``path``, and, when the
caller passes its internal identifiers as ``forbidden_ids``, any cell equal to one of
them (invariant 5). The caller drops its lineage columns first; the catalog keeps them.

Speed: importing GE costs seconds, so it is imported on first use only (importing this
module is cheap, e.g. when Dagster loads definitions). Each distinct suite (same
expectations, same parameters) gets one ephemeral context, data asset, suite and
validation definition, cached for the life of the process; a docs folder adds one docs
site and checkpoint to it. Nothing is fetched from the network and GE's progress bars
and analytics are off.

Docs layout: ``docs_dir/<suite name>/index.html`` (``release_manifest``,
``release_audit``). Each suite has its own site so that validating the two tables in
different processes (Dagster's multiprocess executor) cannot make one site's index
prune the other's pages; each site shows exactly the latest validation of its suite,
which is the one that let the release through. Static assets that no page references
(GE's tutorial GIFs, about 4 MB) are pruned from the site. The checkpoint runs without
actions and the site is built right after (`context.build_data_docs`, the call GE's
UpdateDataDocsAction makes), because an expectation that could not be evaluated carries
a traceback with this server's file paths, which must be scrubbed before it is rendered.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from consentgen.errors import ConfigError, ReleaseError

Direction = Literal["min", "max"]
"""Which bound a threshold is for a value that ships.

``"min"``: the threshold is an exclusive lower bound (distances: a shipped image must be
farther than it from every source). ``"max"``: an exclusive upper bound (similarities
such as the embedding cosine). Exclusive, because the audit flags at equality.
"""

Thresholds = Mapping[str, tuple[Direction, float]]

IDENTIFYING_NAME_PARTS: tuple[str, ...] = ("subject", "source", "record", "patient", "path")
"""A column or index whose name contains one of these (any case) is refused."""

IMAGE_ID_PATTERN = r"^[0-9a-f]{32}$"
"""Published image ids are random: 128 bits as lower-case hex (``uuid4().hex``)."""

DEFAULT_GENERATOR_KINDS: tuple[str, ...] = ("ddpm", "img2img")

MANIFEST_CORE_COLUMNS: tuple[str, ...] = (
    "image_id", "label", "width", "height", "generator", "model_version",
)
"""Columns every manifest has; ``expected_columns`` adds the metric columns (and any
others the release chooses to publish)."""

AUDIT_FLAG_COLUMN = "flagged"
AUDIT_PUBLISHED_COLUMN = "published"
"""Optional bool column of the audit table: when present, the no-flag and safe-distance
expectations apply to the published rows only (flagged-and-replaced rows are expected)."""

DEFAULT_METRIC_RANGES: dict[str, tuple[float, float]] = {
    "phash_distance": (0.0, 64.0),          # Hamming distance of 64-bit hashes
    "pixel_l2": (0.0, 2.0 + 1e-3),          # RMS of standardised images: at most 2
    "patch_l2": (0.0, 64.0),                # tile-wise max of the same: at most 2 * grid
    "embedding_cosine": (-1.0 - 1e-3, 1.0 + 1e-3),
}
"""Plausible (inclusive) ranges of the audit metrics; outside means a broken audit."""

MANIFEST_SUITE = "release_manifest"
AUDIT_SUITE = "release_audit"

_PARTIAL_UNEXPECTED_COUNT = 10
_MAX_CACHED_SUITES = 8


class IdentifyingDataError(ReleaseError):
    """A table headed for public Data Docs carries (or may carry) identifiers.

    `columns` names the offending columns; cell values are never echoed, since they are
    the very identifiers that must not leak into logs either.
    """

    def __init__(self, message: str, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        super().__init__(message)


class FailedExpectation(BaseModel):
    """One expectation that did not hold, in words short enough for a log line."""

    model_config = ConfigDict(frozen=True)

    type: str
    """GE's snake-case expectation type, e.g. ``expect_column_values_to_be_unique``."""
    column: str | None
    """The column it was about; None for table-level expectations."""
    reason: str
    """Counts or observed value; never sample values."""


class ExpectationReport(BaseModel):
    """What a suite found: enough for an asset check's metadata and a data card."""

    model_config = ConfigDict(frozen=True)

    suite_name: str
    success: bool
    evaluated: int
    successful: int
    failed: list[FailedExpectation]
    docs_index: Path | None
    """``index.html`` of this suite's Data Docs site, when a docs folder was given."""

    def failed_types(self) -> set[str]:
        """The types of the failed expectations (handy in checks and tests)."""
        return {f.type for f in self.failed}


def thresholds_from_flag_rules(
    thresholds: Mapping[str, float], flag_when: Mapping[str, str]
) -> dict[str, tuple[Direction, float]]:
    """Translate the audit's "flag when" rules into the safe-side bounds of this module.

    The audit flags a distance at or below its threshold (``"<="``), so a shipped value
    must lie above it (``"min"``); it flags a similarity at or above (``">="``), so a
    shipped value must lie below (``"max"``). E.g. ``thresholds_from_flag_rules(
    AuditConfig().thresholds(), FLAG_WHEN)``.
    """
    out: dict[str, tuple[Direction, float]] = {}
    for metric, value in thresholds.items():
        rule = flag_when.get(metric)
        if rule == "<=":
            out[metric] = ("min", float(value))
        elif rule == ">=":
            out[metric] = ("max", float(value))
        else:
            raise ConfigError(f"no flag rule ('<=' or '>=') for metric {metric!r}")
    return out


# --- input guards (before GE sees anything) -------------------------------------------


def _identifying_names(names: Sequence[object]) -> list[str]:
    found = []
    for name in names:
        text = str(name).lower()
        if any(part in text for part in IDENTIFYING_NAME_PARTS):
            found.append(str(name))
    return found


def _guard_frame(
    frame: pd.DataFrame, what: str, forbidden_ids: Collection[str] | None
) -> pd.DataFrame:
    """The frame GE may see, or IdentifyingDataError.

    The index is dropped as well: GE reports the index labels of unexpected rows, and a
    caller's index may well be a source or record id.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"{what}: expected a pandas DataFrame, got {type(frame).__name__}")
    index_names = [n for n in frame.index.names if n is not None]
    bad = _identifying_names([*map(str, frame.columns), *map(str, index_names)])
    if bad:
        raise IdentifyingDataError(
            f"{what}: refusing columns that may identify a source or subject: "
            f"{', '.join(sorted(bad))}; drop internal lineage columns before validating "
            "(the Data Docs ship publicly)",
            bad,
        )
    if len({str(c) for c in frame.columns}) != len(frame.columns):
        raise ConfigError(f"{what}: duplicate column names")
    if forbidden_ids:
        forbidden = {str(x) for x in forbidden_ids}
        hits = []
        for name in frame.columns:
            col = frame[name]
            if col.dtype.kind in "biufcmM":  # numbers, bools, times: not string ids
                continue
            if col.map(lambda v: isinstance(v, str) and v in forbidden).any():
                hits.append(str(name))
        if hits:
            raise IdentifyingDataError(
                f"{what}: column(s) {', '.join(hits)} hold internal identifiers "
                "(values withheld)",
                hits,
            )
    return frame.reset_index(drop=True)


def _check_thresholds(thresholds: Thresholds) -> dict[str, tuple[Direction, float]]:
    if not thresholds:
        raise ConfigError("thresholds: at least one audit metric is required")
    out: dict[str, tuple[Direction, float]] = {}
    for metric, spec in thresholds.items():
        try:
            direction, value = spec
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"thresholds[{metric!r}]: expected ('min'|'max', number), got {spec!r}"
            ) from exc
        if direction not in ("min", "max"):
            raise ConfigError(f"thresholds[{metric!r}]: direction must be 'min' or 'max'")
        if not math.isfinite(value):
            raise ConfigError(f"thresholds[{metric!r}]: threshold must be finite")
        out[str(metric)] = (direction, value)
    bad = _identifying_names(list(out))
    if bad:
        raise IdentifyingDataError(f"thresholds name identifying columns: {bad}", bad)
    return dict(sorted(out.items()))


# --- suite specifications (plain data, hashed to find a cached runner) -----------------

_Spec = tuple[str, dict[str, Any]]
"""(GE expectation class name, its keyword arguments). ``published_only`` is ours."""


def _safe_side(metric: str, direction: Direction, value: float, **extra: Any) -> _Spec:
    if direction == "min":
        return ("ExpectColumnValuesToBeBetween",
                {"column": metric, "min_value": value, "strict_min": True, **extra})
    return ("ExpectColumnValuesToBeBetween",
            {"column": metric, "max_value": value, "strict_max": True, **extra})


def manifest_specs(
    *,
    expected_columns: Sequence[str],
    labels: Collection[int | str],
    image_size: tuple[int, int],
    thresholds: Thresholds,
    generator_kinds: Collection[str] = DEFAULT_GENERATOR_KINDS,
    image_id_pattern: str = IMAGE_ID_PATTERN,
) -> list[_Spec]:
    """The manifest suite as plain data (validated; ConfigError on unusable settings)."""
    limits = _check_thresholds(thresholds)
    columns = [str(c) for c in expected_columns]
    bad = _identifying_names(columns)
    if bad:
        raise IdentifyingDataError(
            f"expected_columns would publish identifying columns: {', '.join(bad)}", bad
        )
    missing = [c for c in (*MANIFEST_CORE_COLUMNS, *limits) if c not in columns]
    if missing:
        raise ConfigError(f"expected_columns lacks required column(s): {', '.join(missing)}")
    if len(set(columns)) != len(columns):
        raise ConfigError("expected_columns has duplicates")
    if not labels:
        raise ConfigError("labels: the allowed label set is empty")
    if not generator_kinds:
        raise ConfigError("generator_kinds is empty")
    try:
        width, height = (int(image_size[0]), int(image_size[1]))
    except (TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"image_size: expected (width, height), got {image_size!r}") from exc
    if width < 1 or height < 1:
        raise ConfigError(f"image_size must be positive, got {image_size!r}")
    try:
        re.compile(image_id_pattern)
    except re.error as exc:
        raise ConfigError(f"image_id_pattern: {exc}") from exc

    specs: list[_Spec] = [
        ("ExpectTableColumnsToMatchSet", {"column_set": sorted(columns), "exact_match": True}),
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("ExpectColumnValuesToNotBeNull", {"column": "image_id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "image_id"}),
        ("ExpectColumnValuesToMatchRegex", {"column": "image_id", "regex": image_id_pattern}),
        ("ExpectColumnValuesToNotBeNull", {"column": "label"}),
        ("ExpectColumnValuesToBeInSet",
         {"column": "label", "value_set": sorted(labels, key=lambda v: (str(type(v)), v))}),
        ("ExpectColumnValuesToNotBeNull", {"column": "width"}),
        ("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": width,
                                           "max_value": width}),
        ("ExpectColumnValuesToNotBeNull", {"column": "height"}),
        ("ExpectColumnValuesToBeBetween", {"column": "height", "min_value": height,
                                           "max_value": height}),
        ("ExpectColumnValuesToNotBeNull", {"column": "generator"}),
        ("ExpectColumnValuesToBeInSet",
         {"column": "generator", "value_set": sorted(str(k) for k in generator_kinds)}),
        ("ExpectColumnValuesToNotBeNull", {"column": "model_version"}),
    ]
    for metric, (direction, value) in limits.items():
        specs.append(("ExpectColumnValuesToNotBeNull", {"column": metric}))
        specs.append(_safe_side(metric, direction, value))
    return specs


def audit_specs(
    *,
    thresholds: Thresholds,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    published_only: bool = False,
) -> list[_Spec]:
    """The audit suite as plain data.

    `published_only`: the no-flag and safe-side expectations cover the rows whose
    ``published`` column is true (the frame has that column); else every row.
    """
    limits = _check_thresholds(thresholds)
    plausible = {**DEFAULT_METRIC_RANGES, **(ranges or {})}
    extra: dict[str, Any] = {"published_only": True} if published_only else {}
    specs: list[_Spec] = [
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("ExpectColumnToExist", {"column": AUDIT_FLAG_COLUMN}),
        ("ExpectColumnValuesToNotBeNull", {"column": AUDIT_FLAG_COLUMN}),
        ("ExpectColumnValuesToBeInSet",
         {"column": AUDIT_FLAG_COLUMN, "value_set": [False], **extra}),
    ]
    if published_only:
        specs.append(("ExpectColumnValuesToNotBeNull", {"column": AUDIT_PUBLISHED_COLUMN}))
    for metric, (direction, value) in limits.items():
        specs.append(("ExpectColumnToExist", {"column": metric}))
        specs.append(("ExpectColumnValuesToNotBeNull", {"column": metric}))
        if metric in plausible:
            lo, hi = plausible[metric]
            specs.append(("ExpectColumnValuesToBeBetween",
                          {"column": metric, "min_value": float(lo), "max_value": float(hi)}))
        specs.append(_safe_side(metric, direction, value, **extra))
    return specs


# --- GE machinery, imported and built on first use -------------------------------------

_LOCK = threading.RLock()
_RUNNERS: OrderedDict[str, _Runner] = OrderedDict()


def _signature(suite_name: str, specs: list[_Spec]) -> str:
    blob = json.dumps([suite_name, specs], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class _Runner:
    """One suite in its own ephemeral context, with a docs site per docs folder."""

    def __init__(self, suite_name: str, specs: list[_Spec]) -> None:
        with warnings.catch_warnings():  # GE's own imports of deprecated stdlib modules
            warnings.simplefilter("ignore", DeprecationWarning)
            import great_expectations as gx
            import great_expectations.expectations as gxe
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )
            from great_expectations.expectations.row_conditions import Column

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
            kwargs = dict(kwargs)
            if kwargs.pop("published_only", False):  # GE's Column overloads ==
                kwargs["row_condition"] = Column(AUDIT_PUBLISHED_COLUMN) == True
            suite.add_expectation(getattr(gxe, class_name)(**kwargs))
        self.validation = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite_name}_validation", data=batch, suite=suite)
        )
        self.checkpoint = self.context.checkpoints.add(gx.Checkpoint(
            name=f"{suite_name}_checkpoint",
            validation_definitions=[self.validation],
            actions=[],  # docs are built after scrubbing, see `run`
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": _PARTIAL_UNEXPECTED_COUNT,
            },
        ))
        self._sites: dict[str, str] = {}

    def _site(self, site_dir: Path) -> str:
        """The docs site writing to `site_dir`, added to the context on first use."""
        key = str(site_dir)
        if key not in self._sites:
            name = "consentgen_" + hashlib.sha256(key.encode()).hexdigest()[:16]
            self.context.add_data_docs_site(name, {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": key,
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            })
            self._sites[key] = name
        return self._sites[key]

    def run(self, frame: pd.DataFrame, site_dir: Path | None) -> ExpectationReport:
        """Validate `frame`; with `site_dir`, (re)build that suite's Data Docs site.

        The docs are built by the same site builder that GE's UpdateDataDocsAction
        drives, but only after the stored result is scrubbed: an expectation that cannot
        be evaluated (a missing column, a wrong dtype) carries a Python traceback with
        this server's file paths, which GE would otherwise render into public pages.
        """
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        store = self.context.validation_results_store
        # Only the latest validation stays in the store, so the site's index (which
        # prunes pages missing from the store) shows exactly the run that gated release.
        for old in store.list_keys():
            store.remove_key(old)
        result = self.checkpoint.run(batch_parameters={"dataframe": frame})
        ((key, suite_result),) = result.run_results.items()
        if _scrub(suite_result):
            store.set(key, suite_result)
        index = None
        if site_dir is not None:
            self.context.build_data_docs(
                site_names=[self._site(site_dir)],
                resource_identifiers=[key, ExpectationSuiteIdentifier(name=self.suite_name)],
            )
            index = site_dir / "index.html"
            if not index.is_file() or "<html" not in index.read_text(errors="replace")[:4096]:
                raise ReleaseError(f"Data Docs were not written to {site_dir}")
            _prune_static(site_dir)
        return _report(self.suite_name, suite_result, index)


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


def _report(suite_name: str, suite_result: Any, index: Path | None) -> ExpectationReport:
    failed = []
    for res in suite_result.results:
        if res.success:
            continue
        config = res.expectation_config
        column = config.kwargs.get("column")
        failed.append(FailedExpectation(
            type=config.type, column=str(column) if column is not None else None,
            reason=_reason(res),
        ))
    stats = suite_result.statistics
    return ExpectationReport(
        suite_name=suite_name,
        success=bool(suite_result.success),
        evaluated=int(stats["evaluated_expectations"]),
        successful=int(stats["successful_expectations"]),
        failed=failed,
        docs_index=index,
    )


_STATIC_REF = re.compile(r"static/([A-Za-z0-9_.\-/]+)")


def _prune_static(site_dir: Path) -> None:
    """Delete static assets that no page of the site references (~4 MB of GIFs/fonts)."""
    static = site_dir / "static"
    if not static.is_dir():
        return
    referenced: set[str] = set()
    for page in site_dir.rglob("*.html"):
        referenced.update(_STATIC_REF.findall(page.read_text(errors="replace")))
    for path in sorted(static.rglob("*"), reverse=True):
        rel = path.relative_to(static).as_posix()
        if path.is_file() and rel not in referenced:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _run(suite_name: str, specs: list[_Spec], frame: pd.DataFrame,
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
    `docs_dir`: the release's expectations folder; the suite's Data Docs go to
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
    frame = _guard_frame(manifest, "manifest", forbidden_ids)
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
    `ranges`) and on its safe side. With a bool ``published`` column the no-flag and
    safe-side expectations cover the published rows only, so flagged-and-replaced
    candidates may stay in the table. Docs go to ``docs_dir/release_audit/``.
    """
    frame = _guard_frame(audit, "audit", forbidden_ids)
    published_only = AUDIT_PUBLISHED_COLUMN in frame.columns
    specs = audit_specs(thresholds=thresholds, ranges=ranges, published_only=published_only)
    return _run(AUDIT_SUITE, specs, frame, docs_dir)
