"""Lineage questions the catalog answers: which subjects stand behind an image, and
which published images stand on a subject."""

from __future__ import annotations

from consent import Ledger
from pipelines.catalog import Candidate, Catalog, ReleaseImage


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


def published_images_of_subject(catalog: Catalog, subject_id: str) -> list[ReleaseImage]:
    """Every image in any release whose model was trained on this subject, not yet withdrawn."""
    return catalog.select(
        ReleaseImage,
        "WHERE model_version IN (SELECT model_version FROM model_records WHERE subject_id = ?) "
        "AND (version, image_id) NOT IN (SELECT version, image_id FROM withdrawals) "
        "ORDER BY version, image_id",
        [subject_id],
    )


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
