"""The four blocking checks on `audit`: a failing one keeps `release` from running.

Each body is `pipelines.steps.checks.check_<name>` (a `CheckFn`), which checks reality
(the files that would ship, a fresh ledger read) rather than bookkeeping.
"""

# No `from __future__ import annotations` here: Dagster reads the context annotations
# when it builds the definitions.

import dagster as dg

from pipelines.defs.assets import audit
from pipelines.defs.resources import BuildSettings, CatalogResource, LedgerResource, run_snapshot


def blocking_check(name: str, description: str) -> dg.AssetChecksDefinition:
    """A blocking check on `audit` that runs `pipelines.steps.checks.check_<name>`."""

    @dg.asset_check(asset=audit, name=name, blocking=True, description=description)
    def _check(context: dg.AssetCheckExecutionContext, catalog: CatalogResource,
               ledger: LedgerResource, settings: BuildSettings) -> dg.AssetCheckResult:
        from pipelines.steps import checks  # the audit index and GE: only when a check runs

        cat = catalog.catalog()
        run: checks.CheckFn = getattr(checks, f"check_{name}")
        outcome = run(cat, ledger.ledger(), run_snapshot(context, cat), settings.config())
        return dg.AssetCheckResult(
            passed=outcome.passed, description=outcome.description,
            metadata={k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
                      for k, v in outcome.metadata.items()})

    return _check


CHECKS = [
    blocking_check("no_near_duplicates", "Re-audits the files that would ship against every source."),
    blocking_check("lineage_consented",
                   "Every subject behind every image still consents (fresh ledger read)."),
    blocking_check("no_identifying_metadata",
                   "No EXIF, XMP, ICC, text chunks or DICOM tags in any file."),
    blocking_check("expectations_pass",
                   "Great Expectations suites on the manifest and the audit table."),
]
