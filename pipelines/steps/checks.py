"""The blocking checks a release must pass, as plain functions (Dagster wires them).

Each checks reality rather than bookkeeping: the near-duplicate check re-audits the very
files that would ship, the lineage check reads the ledger afresh, the metadata check
opens every file. Every check takes the same four inputs (`CheckFn`), so the Dagster
layer wires them all the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consent import Ledger
from pipelines.steps.audit import audit_files, source_index
from pipelines.catalog import Catalog, Snapshot
from pipelines.catalog.lineage import final_audit_rows, kept_candidates, unconsented_lineage
from pipelines.steps.public_manifest import (
    GENERATOR_KIND,
    MANIFEST_COLUMNS,
    manifest_frame,
    public_audit_frame,
    stage,
)
from pipelines.settings import BuildConfig
from validation.release.metadata import find_identifying_metadata


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


CheckFn = Callable[[Catalog, Ledger, Snapshot, BuildConfig], CheckOutcome]


def check_no_near_duplicates(catalog: Catalog, ledger: Ledger, snapshot: Snapshot,
                             config: BuildConfig) -> CheckOutcome:
    kept = kept_candidates(catalog, snapshot.snapshot_id)
    if not kept:
        return CheckOutcome(False, "no audited candidates to check")
    result = audit_files(source_index(catalog, config), catalog, kept, config.generator.image_size)
    flagged = int(result.flagged.sum())
    return CheckOutcome(
        flagged == 0,
        f"{flagged} of {len(kept)} images are near-duplicates of a source" if flagged
        else f"none of {len(kept)} images is a near-duplicate of any of {result.summary.n_sources} sources",
        {"images": len(kept), "flagged": flagged, "sources": result.summary.n_sources,
         "flagged_by": result.summary.flagged_by},
    )


def check_lineage_consented(catalog: Catalog, ledger: Ledger, snapshot: Snapshot,
                            config: BuildConfig) -> CheckOutcome:
    kept = kept_candidates(catalog, snapshot.snapshot_id)
    tainted = unconsented_lineage(catalog, ledger, snapshot.purpose, kept)
    subjects = set().union(*tainted.values()) if tainted else set()
    return CheckOutcome(
        not tainted,
        f"{len(tainted)} images stand on {len(subjects)} subject(s) without consent now" if tainted
        else f"every subject behind {len(kept)} images still consents (fresh ledger read)",
        {"images": len(kept), "tainted_images": len(tainted), "subjects_without_consent": len(subjects),
         "ledger_head": ledger.head().seq},
    )


def check_no_identifying_metadata(catalog: Catalog, ledger: Ledger, snapshot: Snapshot,
                                  config: BuildConfig) -> CheckOutcome:
    kept = kept_candidates(catalog, snapshot.snapshot_id)
    dirty = {c.candidate_id: find_identifying_metadata(catalog.home / c.image_path) for c in kept}
    dirty = {k: v for k, v in dirty.items() if v}
    kinds = sorted({f.kind for found in dirty.values() for f in found})
    return CheckOutcome(
        not dirty,
        f"{len(dirty)} images carry metadata ({', '.join(kinds)})" if dirty
        else f"no metadata in any of {len(kept)} images",
        {"images": len(kept), "with_metadata": len(dirty), "kinds": kinds},
    )


def check_expectations_pass(catalog: Catalog, ledger: Ledger, snapshot: Snapshot,
                       config: BuildConfig) -> CheckOutcome:
    staged = stage(kept_candidates(catalog, snapshot.snapshot_id),
                   final_audit_rows(catalog, snapshot.snapshot_id))
    reports = run_expectations(catalog, staged, config, docs_dir=None)
    failed = [f"{r.suite_name}: {f.type} on {f.column or 'table'} ({f.reason})"
              for r in reports for f in r.failed]
    return CheckOutcome(
        all(r.success for r in reports),
        "; ".join(failed)[:500] if failed else "manifest and audit suites pass",
        {r.suite_name: r.success for r in reports} | {"failed": len(failed)},
    )


def thresholds(config: BuildConfig) -> dict[str, tuple[str, float]]:
    """Each metric's threshold and the side published values lie on ("min": above)."""
    from pipelines.steps.audit import audit_config
    from validation.audit.results import FLAG_WHEN
    from validation.release.expectations import thresholds_from_flag_rules

    return thresholds_from_flag_rules(audit_config(config).thresholds(), FLAG_WHEN)


def run_expectations(catalog: Catalog, staged: list, config: BuildConfig, *, docs_dir) -> list:
    """The manifest and audit suites; `docs_dir` receives the Data Docs when given.

    Every source record id and subject id is passed as forbidden, so neither can reach
    the Data Docs that ship with a release.
    """
    from validation.release.expectations import validate_audit, validate_manifest

    sources = catalog.sources()
    forbidden = {s.record_id for s in sources} | {s.subject_id for s in sources}
    size = config.generator.image_size
    limits = thresholds(config)
    manifest = validate_manifest(
        manifest_frame(staged, config), expected_columns=MANIFEST_COLUMNS,
        labels=set(config.label_names), image_size=(size, size), thresholds=limits,
        docs_dir=docs_dir, generator_kinds={GENERATOR_KIND}, forbidden_ids=forbidden)
    audit = validate_audit(public_audit_frame(staged), thresholds=limits, docs_dir=docs_dir,
                           forbidden_ids=forbidden)
    return [manifest, audit]
