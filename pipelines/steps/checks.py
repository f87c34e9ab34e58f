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
    MANIFEST_COLUMNS,
    manifest_frame,
    public_audit_frame,
    stage,
)
from pipelines.settings import BuildConfig
from pipelines.steps.classes import snapshot_classes
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
        return CheckOutcome(False, "no audited candidates to check (0 images)", {"images": 0})
    result = audit_files(source_index(catalog, config), catalog, kept, config.generator.image_size)
    flagged = int(result.flagged.sum())
    meta: dict[str, Any] = {"images": len(kept), "flagged": flagged,
                            "sources": result.summary.n_sources,
                            "flagged_by": result.summary.flagged_by}
    if not flagged:
        return CheckOutcome(True, f"none of {len(kept)} images is a near-duplicate of any of "
                                  f"{result.summary.n_sources} sources", meta)
    worst = worst_offender(result.table.to_pylist(), result.summary.thresholds)
    meta |= {f"worst_{k}": v for k, v in worst.items()}
    return CheckOutcome(
        False,
        f"{flagged} of {len(kept)} images are near-duplicates of a source; worst offender "
        f"{worst['candidate']}: {worst['metric']} {worst['value']:.4g} against threshold "
        f"{worst['flag_when']} {worst['threshold']:.4g}", meta)


def worst_offender(rows: list[dict[str, Any]], limits: dict[str, float]) -> dict[str, Any]:
    """The flagged image furthest past a threshold, in units of how far that threshold is
    from the harmless end of its metric (0 for distances, 1 for cosine similarity), with
    that metric, its value and the threshold: what a person checks first."""
    from validation.audit.results import FLAG_WHEN

    def severity(metric: str, value: float) -> float:
        limit = limits[metric]
        if FLAG_WHEN[metric] == ">=":
            return (value - limit) / max(1.0 - limit, 1e-9)
        return (limit - value) / max(limit, 1e-9) if limit > 0 else float(value <= limit)

    found = [(severity(m, float(row[m])), row["candidate_id"], m, float(row[m]))
             for row in rows if row["flagged"] for m in row["flagged_by"].split(",") if m]
    score, candidate, metric, value = max(found)
    return {"candidate": candidate, "metric": metric, "value": value,
            "threshold": limits[metric], "flag_when": FLAG_WHEN[metric]}


def check_lineage_consented(catalog: Catalog, ledger: Ledger, snapshot: Snapshot,
                            config: BuildConfig) -> CheckOutcome:
    kept = kept_candidates(catalog, snapshot.snapshot_id)
    tainted = unconsented_lineage(catalog, ledger, snapshot.purpose, kept)
    subjects = set().union(*tainted.values()) if tainted else set()
    return CheckOutcome(
        not tainted,
        f"{len(tainted)} of {len(kept)} images stand on {len(subjects)} subject(s) without "
        f"consent for {snapshot.purpose} now (first: {min(tainted)})" if tainted
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
    first = min(dirty) if dirty else None
    return CheckOutcome(
        not dirty,
        f"{len(dirty)} of {len(kept)} images carry metadata ({', '.join(kinds)}); first: "
        f"candidate {first} ({', '.join(f.kind for f in dirty[first])})" if first
        else f"no metadata in any of {len(kept)} images",
        {"images": len(kept), "with_metadata": len(dirty), "kinds": kinds}
        | ({"first_candidate": first} if first else {}),
    )


def check_expectations_pass(catalog: Catalog, ledger: Ledger, snapshot: Snapshot,
                            config: BuildConfig) -> CheckOutcome:
    kept = kept_candidates(catalog, snapshot.snapshot_id)
    staged = stage(kept, final_audit_rows(catalog, snapshot.snapshot_id))
    reports = run_expectations(catalog, staged, config, docs_dir=None,
                               snapshot_id=snapshot.snapshot_id)
    failed = [f"{r.suite_name}: {f.type} on {f.column or 'table'} ({f.reason})"
              for r in reports for f in r.failed]
    text = " ".join(f"{len(failed)} expectation(s) failed on {len(kept)} images: "
                    f"{'; '.join(failed)}".split())
    return CheckOutcome(
        all(r.success for r in reports),
        text[:500] if failed else f"manifest and audit suites pass on {len(kept)} images",
        {r.suite_name: r.success for r in reports} | {"failed": len(failed), "images": len(kept)},
    )


def thresholds(config: BuildConfig) -> dict[str, tuple[str, float]]:
    """Each metric's threshold and the side published values lie on ("min": above)."""
    from pipelines.steps.audit import audit_config
    from validation.audit.results import FLAG_WHEN
    from validation.release.expectations import thresholds_from_flag_rules

    return thresholds_from_flag_rules(audit_config(config).thresholds(), FLAG_WHEN)


def run_expectations(catalog: Catalog, staged: list, config: BuildConfig, *, docs_dir,
                     snapshot_id: str) -> list:
    """The manifest and audit suites; `docs_dir` receives the validation pages when given. A
    manifest label must be one of the snapshot's classes.

    Every source record id and subject id is passed as forbidden, so neither can reach
    the validation pages that ship with a release.
    """
    from validation.release.expectations import validate_audit, validate_manifest

    sources = catalog.sources()
    forbidden = {s.record_id for s in sources} | {s.subject_id for s in sources}
    size = config.generator.image_size
    limits = thresholds(config)
    manifest = validate_manifest(
        manifest_frame(staged, config), expected_columns=MANIFEST_COLUMNS,
        labels=set(snapshot_classes(catalog, snapshot_id).labels), image_size=(size, size), thresholds=limits,
        docs_dir=docs_dir, generator_kinds={config.generator.kind}, forbidden_ids=forbidden)
    audit = validate_audit(public_audit_frame(staged), thresholds=limits, docs_dir=docs_dir,
                           forbidden_ids=forbidden)
    return [manifest, audit]
