"""The four blocking checks on `audit`: a failing one keeps `release` from running.

Each body is one call into `pipelines.steps.checks`, which checks reality (the files
that would ship, a fresh ledger read) rather than bookkeeping.
"""

# No `from __future__ import annotations` here: Dagster reads the context annotations
# when it builds the definitions.

import dagster as dg

from pipelines.defs.assets import audit
from pipelines.defs.resources import BuildSettings, CatalogResource, LedgerResource, run_snapshot


def _result(outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, description=outcome.description,
                               metadata={k: dg.MetadataValue.json(v) if isinstance(v, (dict, list))
                                         else v for k, v in outcome.metadata.items()})


@dg.asset_check(asset=audit, blocking=True,
                description="Re-audits the files that would ship against every source.")
def no_near_duplicates(context: dg.AssetCheckExecutionContext, catalog: CatalogResource,
                       settings: BuildSettings) -> dg.AssetCheckResult:
    from pipelines.steps.checks import check_no_near_duplicates

    cat = catalog.catalog()
    return _result(check_no_near_duplicates(cat, run_snapshot(context, cat), settings.config()))


@dg.asset_check(asset=audit, blocking=True,
                description="Every subject behind every image still consents (fresh ledger read).")
def lineage_consented(context: dg.AssetCheckExecutionContext, catalog: CatalogResource,
                      ledger: LedgerResource) -> dg.AssetCheckResult:
    from pipelines.steps.checks import check_lineage_consented

    cat = catalog.catalog()
    return _result(check_lineage_consented(cat, ledger.ledger(), run_snapshot(context, cat)))


@dg.asset_check(asset=audit, blocking=True,
                description="No EXIF, XMP, ICC, text chunks or DICOM tags in any file.")
def no_identifying_metadata(context: dg.AssetCheckExecutionContext,
                            catalog: CatalogResource) -> dg.AssetCheckResult:
    from pipelines.steps.checks import check_no_identifying_metadata

    cat = catalog.catalog()
    return _result(check_no_identifying_metadata(cat, run_snapshot(context, cat)))


@dg.asset_check(asset=audit, blocking=True,
                description="Great Expectations suites on the manifest and the audit table.")
def expectations_pass(context: dg.AssetCheckExecutionContext, catalog: CatalogResource,
                      settings: BuildSettings) -> dg.AssetCheckResult:
    from pipelines.steps.checks import check_expectations

    cat = catalog.catalog()
    return _result(check_expectations(cat, run_snapshot(context, cat), settings.config()))


CHECKS = [no_near_duplicates, lineage_consented, no_identifying_metadata, expectations_pass]
