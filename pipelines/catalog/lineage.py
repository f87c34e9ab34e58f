"""Every question the build steps ask the catalog, and the lineage it answers.

Which records stand behind a shard or a model, which subjects behind an image, which
candidates a build kept, which published images stand on a subject. The steps ask
these by name and hold no SQL of their own, so a question is written once and a change
to a table shows up here alone. Everything reads through `Catalog.select` (rows of one
table) or `Catalog.read` (a few columns, a join or a count).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple

import duckdb
import pyarrow as pa

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
    Snapshot,
    SnapshotClass,
)

# --- what a build chose from the sources ------------------------------------------------


def eligible_records(catalog: Catalog, snapshot_id: str) -> list[EligibleRecord]:
    return catalog.select(EligibleRecord, "WHERE snapshot_id = ? ORDER BY record_id", [snapshot_id])


def exclusions(catalog: Catalog, snapshot_id: str) -> list[Exclusion]:
    return catalog.select(Exclusion, "WHERE snapshot_id = ? ORDER BY record_id", [snapshot_id])


def class_list(catalog: Catalog, snapshot_id: str) -> list[SnapshotClass]:
    """The snapshot's classes in index order (none for a snapshot taken before version 3)."""
    return catalog.select(SnapshotClass, "WHERE snapshot_id = ? ORDER BY class_index", [snapshot_id])


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


CONDITIONING_PREFIX = "img2img:"
"""An img2img shard's "model" is its conditioning set (`pipelines.steps.conditioning`): a
`shard_models` row whose fingerprint starts with this, whose `model_records` are the
shard's records. It trained nothing: each of its candidates stands on exactly the one
record in `candidates.conditioned_on`, which every lineage question here follows."""


def is_conditioning_set(model: ShardModel) -> bool:
    return model.fingerprint.startswith(CONDITIONING_PREFIX)


def model_record_ids(catalog: Catalog, model_version: str) -> set[str]:
    with catalog.read() as con:
        rows = con.execute("SELECT record_id FROM model_records WHERE model_version = ?",
                           [model_version]).fetchall()
    return {r[0] for r in rows}


def subjects_of_candidates(catalog: Catalog, candidates: list[Candidate]) -> dict[str, set[str]]:
    """Candidate id -> the subjects behind it: every subject its model saw, or (img2img) the
    one whose record it was conditioned on. Empty when nobody can say (no lineage rows)."""
    versions = sorted({c.model_version for c in candidates})
    if not versions:
        return {}
    with catalog.read() as con:
        rows = con.execute(
            "SELECT model_version, record_id, subject_id FROM model_records "
            f"WHERE model_version IN ({', '.join('?' * len(versions))})", versions).fetchall()
    by_model: dict[str, set[str]] = {}
    by_record: dict[tuple[str, str], str] = {}
    for version, record, subject in rows:
        by_model.setdefault(version, set()).add(subject)
        by_record[(version, record)] = subject
    return {c.candidate_id: (by_model.get(c.model_version, set()) if c.conditioned_on is None
                             else {s} if (s := by_record.get((c.model_version, c.conditioned_on)))
                             else set())
            for c in candidates}


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

    A model with no lineage rows (an img2img candidate whose record its set does not
    hold) fails closed: nobody could say whose consent it needs, so its images count as
    tainted (with an empty set: the subjects are unknown).
    """
    granted = set(ledger.eligible(purpose))
    behind = subjects_of_candidates(catalog, candidates)
    out = {}
    for c in candidates:
        subjects = behind.get(c.candidate_id, set())
        missing = subjects - granted
        if missing or not subjects:
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


# --- what consent no longer covers: reconcile, bans, the models a build may use ---------
#
# "Eligible now" comes from the ledger (one `Ledger.eligible` call per purpose) and joins
# the catalog here as a registered Arrow table, so each question is one query however
# many images, models or subjects there are.

_PRESENT = """
    WITH present AS (
        SELECT ri.version, ri.image_id, ri.candidate_id, ri.label, ri.shard, ri.model_version,
               ri.file_name, rel.status, coalesce(snap.purpose, $purpose) AS purpose,
               (SELECT any_value(c.conditioned_on) FROM candidates c
                WHERE c.candidate_id = ri.candidate_id) AS conditioned_on
        FROM release_images ri
        JOIN releases rel ON rel.version = ri.version
        LEFT JOIN consent_snapshots snap ON snap.snapshot_id = rel.snapshot_id
        WHERE rel.status IN ('published', 'pending')
          AND NOT EXISTS (SELECT 1 FROM withdrawals w
                          WHERE w.version = ri.version AND w.image_id = ri.image_id)
    )
"""
"""Release images still present: in a published (or pending) release and not withdrawn,
with their release's purpose (`$purpose` for a release whose snapshot row is missing) and
the record an img2img image was conditioned on (`_STANDS_ON` joins its lineage)."""

_STANDS_ON = """JOIN model_records mr ON mr.model_version = p.model_version
    AND mr.record_id = coalesce(p.conditioned_on, mr.record_id)"""
"""The subjects behind a present image `p`: every record its model saw, or only the one an
img2img image was conditioned on."""


class PresentImage(NamedTuple):
    """A release image still present, what stands behind it, and where its pixels are."""

    image: ReleaseImage
    status: str  # of its release: published or pending
    purpose: str | None  # of its release's snapshot
    candidate_path: str | None  # the candidate's PNG, home-relative
    subjects: tuple[str, ...]  # the subjects the question was about (may be empty)


def _subject_table(pairs: Collection[tuple[str, str]]) -> pa.Table:
    return pa.table({"purpose": pa.array([p for p, _ in pairs], pa.string()),
                     "subject_id": pa.array([s for _, s in pairs], pa.string())})


def eligible_table(eligible: Mapping[str, Collection[str]]) -> pa.Table:
    """purpose -> subjects eligible now, as the (purpose, subject_id) table queries join."""
    return _subject_table([(p, s) for p, subjects in eligible.items() for s in subjects])


@contextmanager
def _read_with(catalog: Catalog, **tables: pa.Table) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read connection with `tables` registered under their names for one question."""
    with catalog.read() as con:
        for name, table in tables.items():
            con.register(name, table)
        yield con


def present_purposes(catalog: Catalog, default_purpose: str) -> set[str]:
    """The purposes of the releases that still have images present."""
    with catalog.read() as con:
        rows = con.execute(_PRESENT + "SELECT DISTINCT purpose FROM present",
                           {"purpose": default_purpose}).fetchall()
    return {r[0] for r in rows}


def ineligible_lineage(catalog: Catalog, eligible: pa.Table, default_purpose: str, *,
                       subject_id: str | None = None) -> set[tuple[str, str]]:
    """(purpose, subject) of each subject behind a present image who is not in `eligible`
    (an `eligible_table`) for that image's release purpose."""
    only = "AND mr.subject_id = $subject" if subject_id is not None else ""
    params = {"purpose": default_purpose} | ({} if subject_id is None else {"subject": subject_id})
    with _read_with(catalog, eligible_now=eligible) as con:
        rows = con.execute(_PRESENT + f"""
            SELECT DISTINCT p.purpose, mr.subject_id
            FROM present p {_STANDS_ON}
            WHERE NOT EXISTS (SELECT 1 FROM eligible_now e
                              WHERE e.purpose = p.purpose AND e.subject_id = mr.subject_id) {only}
        """, params).fetchall()
    return {(r[0], r[1]) for r in rows}


_PRESENT_COLUMNS = """p.version, p.image_id, p.candidate_id, p.label, p.shard, p.model_version,
    p.file_name, p.status, p.purpose,
    (SELECT min(c.image_path) FROM candidates c WHERE c.candidate_id = p.candidate_id)"""


def _present(row: tuple, subjects: tuple[str, ...] = ()) -> PresentImage:
    names = ReleaseImage.columns()
    n = len(names)
    return PresentImage(ReleaseImage(**dict(zip(names, row[:n], strict=True))),
                        row[n], row[n + 1], row[n + 2], subjects)


def images_standing_on(catalog: Catalog, subjects: Collection[tuple[str, str]],
                       default_purpose: str, *, limit: int) -> list[PresentImage]:
    """Present images (at most `limit`, by version and id) whose model saw any of these
    (purpose, subject) pairs under their release's purpose, each with those subjects."""
    if not subjects:
        return []
    with _read_with(catalog, wanted=_subject_table(subjects)) as con:
        rows = con.execute(_PRESENT + f"""
            SELECT {_PRESENT_COLUMNS}, list_sort(list(DISTINCT mr.subject_id))
            FROM present p {_STANDS_ON}
            JOIN wanted w ON w.purpose = p.purpose AND w.subject_id = mr.subject_id
            GROUP BY ALL ORDER BY p.version, p.image_id LIMIT $limit
        """, {"purpose": default_purpose, "limit": limit}).fetchall()
    return [_present(r[:-1], tuple(r[-1])) for r in rows]


def present_images(catalog: Catalog, default_purpose: str) -> list[PresentImage]:
    """Every present image (for a look-up by pixels, which the catalog does not hold)."""
    with catalog.read() as con:
        rows = con.execute(_PRESENT + f"SELECT {_PRESENT_COLUMNS} FROM present p "
                           "ORDER BY p.version, p.image_id", {"purpose": default_purpose}).fetchall()
    return [_present(r) for r in rows]


def release_images_by_id(catalog: Catalog, image_id: str) -> list[PresentImage]:
    """Every release row with this public image id, withdrawn or not, with its candidate."""
    with catalog.read() as con:
        rows = con.execute(
            f"SELECT {_PRESENT_COLUMNS} FROM (SELECT ri.*, rel.status, snap.purpose "
            "FROM release_images ri JOIN releases rel USING (version) LEFT JOIN consent_snapshots "
            "snap ON snap.snapshot_id = rel.snapshot_id WHERE ri.image_id = ?) p ORDER BY p.version",
            [image_id]).fetchall()
    return [_present(r) for r in rows]


def stale_models(catalog: Catalog, eligible: pa.Table, purpose: str) -> list[ShardModel]:
    """Each shard's newest model, where it saw a subject not in `eligible` for `purpose`:
    the shards a rebuild must retrain (that model is never used again)."""
    with _read_with(catalog, eligible_now=eligible) as con:
        rows = con.execute(f"""
            SELECT {', '.join(ShardModel.columns())} FROM shard_models m
            WHERE m.model_version IN (SELECT arg_max(model_version, trained_at)
                                      FROM shard_models GROUP BY shard)
              AND EXISTS (SELECT 1 FROM model_records mr
                          WHERE mr.model_version = m.model_version
                            AND NOT EXISTS (SELECT 1 FROM eligible_now e WHERE e.purpose = $purpose
                                            AND e.subject_id = mr.subject_id))
            ORDER BY shard""", {"purpose": purpose}).fetchall()
    return [ShardModel(**dict(zip(ShardModel.columns(), r, strict=True))) for r in rows]


def usable_model(catalog: Catalog, snapshot_id: str, shard: int, fingerprint: str,
                 eligible_now: Collection[str], *, conditioning: bool = False
                 ) -> ShardModel | None:
    """The model a build of this snapshot may use for `shard`, or None.

    Preferably the one trained on exactly the snapshot's records (`fingerprint`), else the
    newest whose every record is a training record of the snapshot; either way only a
    model with lineage rows (fail closed) every subject of which is eligible NOW: a fresh
    ledger read, not the snapshot, decides whether a model may be used again. Of the
    build's generator kind only: an img2img conditioning set when `conditioning`, else a
    checkpoint.
    """
    now = pa.table({"subject_id": pa.array(sorted(eligible_now), pa.string())})
    with _read_with(catalog, eligible_now=now) as con:
        rows = con.execute(f"""
            SELECT {', '.join(ShardModel.columns())} FROM shard_models m
            WHERE shard = $shard AND starts_with(m.fingerprint, $prefix) = $conditioning
              AND EXISTS (SELECT 1 FROM model_records r WHERE r.model_version = m.model_version)
              AND NOT EXISTS (SELECT 1 FROM model_records r WHERE r.model_version = m.model_version
                              AND r.subject_id NOT IN (SELECT subject_id FROM eligible_now))
              AND (m.fingerprint = $fp OR NOT EXISTS (
                  SELECT 1 FROM model_records r WHERE r.model_version = m.model_version
                  AND r.record_id NOT IN (SELECT record_id FROM eligible_records
                                          WHERE snapshot_id = $snapshot AND role = 'train')))
            ORDER BY (m.fingerprint = $fp) DESC, trained_at DESC LIMIT 1""",
            {"shard": shard, "fp": fingerprint, "snapshot": snapshot_id,
             "prefix": CONDITIONING_PREFIX, "conditioning": conditioning}).fetchall()
    return ShardModel(**dict(zip(ShardModel.columns(), rows[0], strict=True))) if rows else None


def banned_values(catalog: Catalog) -> tuple[set[str], set[str]]:
    """(banned candidate ids, banned pixel hashes): what no build may publish again."""
    with catalog.read() as con:
        rows = con.execute("SELECT kind, value FROM bans").fetchall()
    return ({v for k, v in rows if k == "candidate"}, {v for k, v in rows if k == "pixels"})


# --- what the sweep compares with the data home ----------------------------------------


def models_of_fingerprint(catalog: Catalog, shard: int, fingerprint: str) -> list[ShardModel]:
    """Every recorded model of this shard trained on exactly these records and settings."""
    return catalog.select(ShardModel, "WHERE shard = ? AND fingerprint = ? ORDER BY model_version",
                          [shard, fingerprint])


def recorded_paths(catalog: Catalog) -> tuple[set[str], set[str]]:
    """(model folders, candidate PNGs) the catalog names, home-relative: a file the data
    home holds beyond these was left by a crash between the file and its row."""
    with catalog.read() as con:
        models = con.execute("SELECT model_path FROM shard_models").fetchall()
        pngs = con.execute("SELECT DISTINCT image_path FROM candidates").fetchall()
    return {r[0] for r in models}, {r[0] for r in pngs}


def snapshots_at_head(catalog: Catalog, head_seq: int, head_hash: str) -> list[Snapshot]:
    """The snapshots that honoured this ledger head, newest first."""
    return catalog.select(Snapshot, "WHERE head_seq = ? AND head_hash = ? ORDER BY taken_at DESC",
                          [head_seq, head_hash])


def withdrawn_from(catalog: Catalog, version: str) -> set[str]:
    """Image ids withdrawn from this version (from a pending one: while it was publishing)."""
    with catalog.read() as con:
        rows = con.execute("SELECT image_id FROM withdrawals WHERE version = ?", [version]).fetchall()
    return {r[0] for r in rows}
