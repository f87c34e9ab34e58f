"""The blocking checks a release must pass, as plain functions (Dagster wires them).

Each checks reality rather than bookkeeping: the near-duplicate check re-audits the very
files that would ship, the lineage check reads the ledger afresh, the metadata check
opens every file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consent import Ledger
from pipelines.auditing import audit_files, source_index
from pipelines.candidates import kept_candidates
from pipelines.catalog import Catalog, Snapshot
from pipelines.lineage import unconsented_lineage
from pipelines.manifest import MANIFEST_COLUMNS, final_audit_rows, manifest_frame, public_audit_frame, stage
from pipelines.settings import BuildConfig
from validation.metadata import find_identifying_metadata


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def check_no_near_duplicates(catalog: Catalog, snapshot: Snapshot, config: BuildConfig) -> CheckOutcome:
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


def check_lineage_consented(catalog: Catalog, ledger: Ledger, snapshot: Snapshot) -> CheckOutcome:
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


def check_no_identifying_metadata(catalog: Catalog, snapshot: Snapshot) -> CheckOutcome:
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


def check_expectations(catalog: Catalog, snapshot: Snapshot, config: BuildConfig) -> CheckOutcome:
    from validation.expectations import validate_audit, validate_manifest

    staged = stage(kept_candidates(catalog, snapshot.snapshot_id),
                   final_audit_rows(catalog, snapshot.snapshot_id))
    manifest = validate_manifest(
        manifest_frame(staged, config), **manifest_expectations(config))
    audit = validate_audit(public_audit_frame(staged), **audit_expectations(config))
    failed = [f"{r.suite_name}: {f}" for r in (manifest, audit) for f in r.failed]
    return CheckOutcome(
        manifest.success and audit.success,
        "; ".join(map(str, failed))[:500] if failed else "manifest and audit suites pass",
        {"manifest_success": manifest.success, "audit_success": audit.success,
         "failed": len(failed)},
    )


def manifest_expectations(config: BuildConfig, docs_dir=None) -> dict[str, Any]:
    size = config.generator.image_size
    return {"expected_columns": MANIFEST_COLUMNS, "labels": set(config.label_names),
            "image_size": (size, size), "docs_dir": docs_dir}


def audit_expectations(config: BuildConfig, docs_dir=None) -> dict[str, Any]:
    from pipelines.auditing import audit_config

    limits = audit_config(config).thresholds()
    return {"thresholds": {m: ("min" if m == "embedding_cosine" else "max", t) for m, t in limits.items()},
            "docs_dir": docs_dir}
