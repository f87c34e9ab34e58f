"""Great Expectations suites on what a release ships: the manifest and the audit table.

Two suites guard the two tables a release publishes (`suites`): the manifest suite pins
the exact public column set, random image ids, labels, image size, generator kinds and
every audit distance on its safe side; the audit suite checks that no shipped image was
flagged and every distance is present, plausible and safe. Before GE sees a table, both
entry points refuse identifying column names and the caller's internal ids (`guards`),
because the validation pages ship publicly. `runner` holds the ephemeral GE context, the
reports and the offline validation page (`page`), and imports GE on first use only, so importing this package
stays cheap (Dagster imports it while loading definitions).

The names below are the package's public face; import them from here.
"""

from validation.release.expectations.guards import IDENTIFYING_NAME_PARTS, IdentifyingDataError
from validation.release.expectations.runner import (
    ExpectationOutcome,
    ExpectationReport,
    FailedExpectation,
    validate_audit,
    validate_manifest,
)
from validation.release.expectations.suites import (
    AUDIT_FLAG_COLUMN,
    AUDIT_SUITE,
    DEFAULT_GENERATOR_KINDS,
    DEFAULT_METRIC_RANGES,
    IMAGE_ID_PATTERN,
    MANIFEST_CORE_COLUMNS,
    MANIFEST_SUITE,
    Direction,
    Thresholds,
    audit_specs,
    manifest_specs,
    thresholds_from_flag_rules,
)

__all__ = [
    "AUDIT_FLAG_COLUMN",
    "AUDIT_SUITE",
    "DEFAULT_GENERATOR_KINDS",
    "DEFAULT_METRIC_RANGES",
    "IDENTIFYING_NAME_PARTS",
    "IMAGE_ID_PATTERN",
    "MANIFEST_CORE_COLUMNS",
    "MANIFEST_SUITE",
    "Direction",
    "ExpectationOutcome",
    "ExpectationReport",
    "FailedExpectation",
    "IdentifyingDataError",
    "Thresholds",
    "audit_specs",
    "manifest_specs",
    "thresholds_from_flag_rules",
    "validate_audit",
    "validate_manifest",
]
