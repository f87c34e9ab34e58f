"""Every question the build steps ask the catalog, and the lineage it answers.

Which records stand behind a shard or a model, which subjects behind an image, which
candidates a build kept, which published images stand on a subject. The steps ask
these by name and hold no SQL of their own, so a question is written once and a change
to a table shows up here alone. Everything reads through `Catalog.select` (rows of one
table) or `Catalog.read` (a few columns, a join or a count).
"""

from __future__ import annotations

from collections import Counter

from consent import Ledger
from pipelines.catalog import (
    AuditRow,
    Candidate,
    Catalog,
    EligibleRecord,
    Exclusion,
    Release,
    ReleaseImage,
    ShardModel,
)

# --- what a build chose from the sources ------------------------------------------------


def eligible_records(catalog: Catalog, snapshot_id: str) -> list[EligibleRecord]:
    return catalog.select(EligibleRecord, "WHERE snapshot_id = ? ORDER BY record_id", [snapshot_id])


def exclusions(catalog: Catalog, snapshot_id: str) -> list[Exclusion]:
    return catalog.select(Exclusion, "WHERE snapshot_id = ? ORDER BY record_id", [snapshot_id])


def shard_training_records(catalog: Catalog, snapshot_id: str, shard: int) -> list[EligibleRecord]:
    """The records a shard's model for this snapshot trains on (holdout left out)."""
    return catalog.select(
        EligibleRecord,
        "WHERE snapshot_id = ? AND shard = ? AND role = 'train' ORDER BY record_id",
        [snapshot_id, shard],
    )


# --- which model stands on which records ----------------------------------------------


def model_by_fingerprint(catalog: Catalog, shard: int, fingerprint: str) -> ShardModel | None:
    """The newest model trained on exactly these records with these settings."""
    found = catalog.select(ShardModel, "WHERE shard = ? AND fingerprint = ? ORDER BY trained_at DESC",
                           [shard, fingerprint])
    return found[0] if found else None


def still_consented_model(catalog: Catalog, snapshot_id: str, shard: int) -> ShardModel | None:
    """The shard's newest model whose every record is a training record of this snapshot."""
    found = catalog.select(
        ShardModel,
        "WHERE shard = ? AND NOT EXISTS (SELECT 1 FROM model_records r "
        "WHERE r.model_version = shard_models.model_version AND r.record_id NOT IN "
        "(SELECT record_id FROM eligible_records WHERE snapshot_id = ? AND role = 'train')) "
        "ORDER BY trained_at DESC LIMIT 1",
        [shard, snapshot_id],
    )
    return found[0] if found else None


def subjects_of_models(catalog: Catalog, model_versions: set[str]) -> dict[str, set[str]]:
    if not model_versions:
        return {}
    marks = ", ".join("?" * len(model_versions))
    with catalog.read() as con:
        rows = con.execute(
            f"SELECT model_version, subject_id FROM model_records WHERE model_version IN ({marks})",
            sorted(model_versions),
        ).fetchall()
    out: dict[str, set[str]] = {v: set() for v in model_versions}
    for version, subject in rows:
        out[version].add(subject)
    return out


def shards_trained_on(catalog: Catalog, subject_id: str) -> set[int]:
    """Shards whose newest model saw this subject: the ones a revocation makes stale."""
    with catalog.read() as con:
        rows = con.execute(
            """
            WITH newest AS (
                SELECT shard, arg_max(model_version, trained_at) AS model_version
                FROM shard_models GROUP BY shard
            )
            SELECT DISTINCT n.shard FROM newest n JOIN model_records r USING (model_version)
            WHERE r.subject_id = ?
            """, [subject_id],
        ).fetchall()
    return {int(r[0]) for r in rows}


# --- candidates and what the audit made of them ----------------------------------------


def snapshot_candidates(catalog: Catalog, snapshot_id: str) -> list[Candidate]:
    """Every candidate a build drew, replacements included."""
    return catalog.select(Candidate, "WHERE snapshot_id = ? ORDER BY shard, candidate_id", [snapshot_id])


def kept_candidates(catalog: Catalog, snapshot_id: str) -> list[Candidate]:
    """The candidates a build's audit kept: what it may publish."""
    return catalog.select(
        Candidate,
        "WHERE snapshot_id = ? AND candidate_id IN (SELECT candidate_id FROM audit_results "
        "WHERE snapshot_id = ? AND kept) ORDER BY shard, candidate_id",
        [snapshot_id, snapshot_id],
    )


def last_kept_candidates_of_model(catalog: Catalog, model_version: str) -> list[Candidate]:
    """What the newest build that drew from this model version audited and kept."""
    return catalog.select(
        Candidate,
        "WHERE model_version = ? AND snapshot_id = (SELECT max(c.snapshot_id) FROM candidates c "
        "WHERE c.model_version = ?) AND candidate_id IN (SELECT candidate_id FROM audit_results "
        "WHERE kept) ORDER BY candidate_id",
        [model_version, model_version],
    )


def final_audit_rows(catalog: Catalog, snapshot_id: str) -> dict[str, AuditRow]:
    """The last audit row of each candidate in this build."""
    rows = catalog.select(AuditRow, "WHERE snapshot_id = ? ORDER BY round", [snapshot_id])
    return {r.candidate_id: r for r in rows}


def unconsented_lineage(catalog: Catalog, ledger: Ledger, purpose: str,
                        candidates: list[Candidate]) -> dict[str, set[str]]:
    """Candidate id -> subjects in its lineage whose consent does NOT hold now.

    A fresh read of the ledger (now, everything recorded so far), not the build's
    snapshot: this closes the window between snapshot and publish.
    """
    granted = set(ledger.eligible(purpose))
    by_model = subjects_of_models(catalog, {c.model_version for c in candidates})
    out = {}
    for c in candidates:
        missing = by_model.get(c.model_version, set()) - granted
        if missing or c.model_version not in by_model:
            out[c.candidate_id] = missing
    return out


# --- releases and withdrawals ---------------------------------------------------------


def releases(catalog: Catalog) -> list[Release]:
    return catalog.select(Release, "ORDER BY version")


def withdrawn_per_version(catalog: Catalog) -> Counter[str]:
    """How many images each release has lost to withdrawals."""
    with catalog.read() as con:
        rows = con.execute("SELECT version, count(*) FROM withdrawals GROUP BY version").fetchall()
    return Counter({version: int(n) for version, n in rows})


def published_images_of_subject(catalog: Catalog, subject_id: str) -> list[ReleaseImage]:
    """Every image in any release whose model was trained on this subject, not yet withdrawn."""
    return catalog.select(
        ReleaseImage,
        "WHERE model_version IN (SELECT model_version FROM model_records WHERE subject_id = ?) "
        "AND (version, image_id) NOT IN (SELECT version, image_id FROM withdrawals) "
        "ORDER BY version, image_id",
        [subject_id],
    )
