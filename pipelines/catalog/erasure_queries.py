"""The catalog's questions and writes for erasure, and for the record a DPO reads.

Which subjects still have something on disk, which checkpoints and candidates stand on
them, which of their source PNGs another record still needs; and the one write that
records what was erased (and forgets the erased source rows) in one transaction. Kept
apart from `lineage` because erasure is the one place that deletes catalog rows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import NamedTuple, TypeVar

import pyarrow as pa

from pipelines.catalog import Candidate, Catalog, Erasure, ShardModel, SourceRecord, Withdrawal
from pipelines.catalog.lineage import CONDITIONING_PREFIX
from pipelines.catalog.schema import Row, arrow_schema


RowT = TypeVar("RowT", bound=Row)

def _marks(values: Collection[object]) -> str:
    return ", ".join("?" * len(values))


# --- img2img: conditioning sets ------------------------------------------------------
# A set (`lineage.CONDITIONING_PREFIX`) trained nothing and holds no pixels (its folder
# is a manifest of record ids), so erasure deletes no set: it deletes the candidates
# conditioned on the subject's records (`candidates.conditioned_on`), the lineage there is.

_SETS = ("(SELECT model_version FROM shard_models "
         f"WHERE starts_with(fingerprint, '{CONDITIONING_PREFIX}'))")
"""SQL: the model versions that are conditioning sets."""

_CONDITIONED = """(SELECT c.candidate_id, c.model_version, c.conditioned_on, r.subject_id
    FROM candidates c JOIN model_records r
      ON r.model_version = c.model_version AND r.record_id = c.conditioned_on)"""
"""SQL: each conditioned candidate (one row per build that drew or reused it) with the one
subject behind it."""

_IMAGE_ON_SUBJECT = """EXISTS (SELECT 1 FROM model_records mr
    WHERE mr.subject_id = $s AND mr.model_version = i.model_version
      AND coalesce((SELECT any_value(c.conditioned_on) FROM candidates c
                    WHERE c.candidate_id = i.candidate_id), mr.record_id) = mr.record_id)"""
"""SQL: release image `i` stands on subject `$s`: its model saw them, or (img2img) it was
conditioned on one of their records."""


# --- who still has something on disk -------------------------------------------------


def standing_subjects(catalog: Catalog, subject_id: str | None = None) -> set[str]:
    """Subjects with a source row, a checkpoint that trained on them, or an img2img candidate
    conditioned on one of their records, whose erasure is not recorded for them: the only
    ones an erasure pass needs to look at."""
    only = "AND subject_id = ?" if subject_id else ""
    params = [subject_id] * 3 if subject_id else []
    with catalog.read() as con:
        rows = con.execute(
            f"""
            SELECT subject_id FROM sources WHERE true {only}
            UNION
            SELECT subject_id FROM model_records r WHERE true {only}
              AND r.model_version NOT IN {_SETS} AND NOT EXISTS (
                SELECT 1 FROM erasures e WHERE e.kind = 'checkpoint'
                AND e.ref = r.model_version AND e.subject_id = r.subject_id)
            UNION
            SELECT subject_id FROM {_CONDITIONED} k WHERE true {only} AND NOT EXISTS (
                SELECT 1 FROM erasures e WHERE e.kind = 'candidate'
                AND e.ref = k.candidate_id AND e.subject_id = k.subject_id)
            """, params).fetchall()
    return {r[0] for r in rows}


def known_subject(catalog: Catalog, subject_id: str) -> bool:
    """Whether the catalog has ever held anything of this subject."""
    with catalog.read() as con:
        row = con.execute(
            "SELECT EXISTS (SELECT 1 FROM sources WHERE subject_id = $s) "
            "OR EXISTS (SELECT 1 FROM model_records WHERE subject_id = $s) "
            "OR EXISTS (SELECT 1 FROM erasures WHERE subject_id = $s) "
            "OR EXISTS (SELECT 1 FROM withdrawals WHERE subject_id = $s)", {"s": subject_id}).fetchone()
    return bool(row and row[0])


# --- what stands on them --------------------------------------------------------------


def sources_of(catalog: Catalog, subjects: Collection[str]) -> list[SourceRecord]:
    if not subjects:
        return []
    return catalog.select(SourceRecord, f"WHERE subject_id IN ({_marks(subjects)}) ORDER BY record_id",
                          sorted(subjects))


def content_still_needed(catalog: Catalog, hashes: Collection[str], leaving: Collection[str]
                         ) -> dict[str, int]:
    """Content hash -> how many records of subjects NOT in `leaving` hold those pixels
    (sources are content-addressed, so such a PNG is one file shared by all of them)."""
    if not hashes:
        return {}
    others = f"AND subject_id NOT IN ({_marks(leaving)})" if leaving else ""
    with catalog.read() as con:
        rows = con.execute(
            f"SELECT content_hash, count(*) FROM sources WHERE content_hash IN ({_marks(hashes)}) "
            f"{others} GROUP BY content_hash", [*sorted(hashes), *sorted(leaving)]).fetchall()
    return {h: int(n) for h, n in rows}


class TrainedOn(NamedTuple):
    subject_id: str
    model: ShardModel


def models_trained_on(catalog: Catalog, subjects: Collection[str]) -> list[TrainedOn]:
    """Every recorded checkpoint that saw one of `subjects`, once per (subject, model); an
    img2img conditioning set is none (`CONDITIONING_PREFIX`)."""
    if not subjects:
        return []
    found = _rows_with_subject(
        catalog, ShardModel, "DISTINCT r.subject_id", "m",
        "FROM model_records r JOIN shard_models m USING (model_version) "
        f"WHERE r.subject_id IN ({_marks(subjects)}) "
        f"AND NOT starts_with(m.fingerprint, '{CONDITIONING_PREFIX}') "
        "ORDER BY m.model_version, r.subject_id", sorted(subjects))
    return [TrainedOn(subject, model) for subject, model in found]


def recorded_model_versions(catalog: Catalog) -> set[str]:
    with catalog.read() as con:
        return {r[0] for r in con.execute("SELECT model_version FROM shard_models").fetchall()}


def record_ids_of(catalog: Catalog, subjects: Collection[str]) -> dict[str, str]:
    """Record id -> subject, for every record of `subjects` the catalog ever named
    (sources, builds' choices, models' lineage, erasures of sources)."""
    if not subjects:
        return {}
    marks = _marks(subjects)
    with catalog.read() as con:
        rows = con.execute(
            f"SELECT record_id, subject_id FROM sources WHERE subject_id IN ({marks}) UNION "
            f"SELECT record_id, subject_id FROM eligible_records WHERE subject_id IN ({marks}) UNION "
            f"SELECT record_id, subject_id FROM exclusions WHERE subject_id IN ({marks}) UNION "
            f"SELECT record_id, subject_id FROM model_records WHERE subject_id IN ({marks}) UNION "
            f"SELECT ref, subject_id FROM erasures WHERE kind = 'source' AND subject_id IN ({marks})",
            sorted(subjects) * 5).fetchall()
    return {r[0]: r[1] for r in rows}


def candidates_of_models(catalog: Catalog, versions: Collection[str]) -> list[Candidate]:
    """Every candidate those models drew (flagged near-copies and replacements included),
    once per candidate id (a reused candidate has a row per build that reused it)."""
    if not versions:
        return []
    found = catalog.select(Candidate, f"WHERE model_version IN ({_marks(versions)}) "
                           "ORDER BY candidate_id", sorted(versions))
    return list({c.candidate_id: c for c in found}.values())


class ConditionedOn(NamedTuple):
    subject_id: str
    candidate: Candidate


def candidates_conditioned_on(catalog: Catalog, subjects: Collection[str]) -> list[ConditionedOn]:
    """Every img2img candidate conditioned on a record of one of `subjects` (flagged ones
    and replacements included), once per candidate id: exactly their images, no others."""
    if not subjects:
        return []
    found = _rows_with_subject(
        catalog, Candidate, "k.subject_id", "c",
        f"FROM {_CONDITIONED} k JOIN candidates c USING (candidate_id) "
        f"WHERE k.subject_id IN ({_marks(subjects)}) ORDER BY c.candidate_id, c.snapshot_id",
        sorted(subjects))
    return list({c.candidate_id: ConditionedOn(subject, c) for subject, c in found}.values())


def _rows_with_subject(catalog: Catalog, model: type[RowT], subject: str, alias: str,
                       rest: str, params: list[str]) -> list[tuple[str, RowT]]:
    """(subject id, row of `model`) per result of `SELECT <subject>, <alias>.<every column>
    <rest>`: the one place these subject-tagged rows are selected and rebuilt."""
    columns = model.columns()
    with catalog.read() as con:
        rows = con.execute(f"SELECT {subject}, {', '.join(f'{alias}.{c}' for c in columns)} {rest}",
                           params).fetchall()
    return [(r[0], model(**dict(zip(columns, r[1:], strict=True)))) for r in rows]


# --- the record of erasure -------------------------------------------------------------


def erasures(catalog: Catalog, subject_id: str | None = None) -> list[Erasure]:
    where, params = ("WHERE subject_id = ?", [subject_id]) if subject_id else ("", [])
    return catalog.select(Erasure, f"{where} ORDER BY erased_at, kind, ref", params)


def erasure_keys(catalog: Catalog, subjects: Collection[str]) -> set[tuple[str, str, str]]:
    """(subject, kind, ref) of every erasure already recorded for `subjects`."""
    if not subjects:
        return set()
    with catalog.read() as con:
        rows = con.execute(f"SELECT subject_id, kind, ref FROM erasures WHERE subject_id IN "
                           f"({_marks(subjects)})", sorted(subjects)).fetchall()
    return {(r[0], r[1], r[2]) for r in rows}


def first_erased(catalog: Catalog, kind: str, refs: Collection[str]) -> dict[str, datetime]:
    """When each of `refs` was first recorded erased, for whichever subject: a shared
    checkpoint or candidate is deleted once, and later subjects' rows keep that time."""
    if not refs:
        return {}
    with catalog.read() as con:
        rows = con.execute(f"SELECT ref, min(erased_at) FROM erasures WHERE kind = ? AND ref IN "
                           f"({_marks(refs)}) GROUP BY ref", [kind, *sorted(refs)]).fetchall()
    return {r[0]: r[1] for r in rows}


def record_erasures(catalog: Catalog, rows: Sequence[Erasure], *, forget_sources: Collection[str]
                    ) -> None:
    """Record what was erased and drop the erased records' source rows, in ONE transaction.

    A key seen before (the same record ingested again after its erasure, and erased again)
    takes the newer time and path: the row says when the last copy went. The source row
    goes because it holds more than ids and hashes (the original path, sizes, formats);
    the erasure row keeps the record id and content hash.
    """
    if not rows and not forget_sources:
        return
    with catalog.write() as con:
        if rows:
            batch = pa.Table.from_pylist([r.model_dump() for r in rows], schema=arrow_schema(Erasure))
            names = ", ".join(Erasure.columns())
            con.register("erased", batch)
            con.execute(
                f"INSERT INTO erasures ({names}) SELECT {names} FROM erased ON CONFLICT "
                "(subject_id, kind, ref) DO UPDATE SET path = excluded.path, "
                "content_hash = excluded.content_hash, erased_at = excluded.erased_at")
            con.unregister("erased")
        if forget_sources:
            con.execute(f"DELETE FROM sources WHERE record_id IN ({_marks(forget_sources)})",
                        sorted(forget_sources))


# --- what a DPO reads besides --------------------------------------------------------


class WithdrawnImage(NamedTuple):
    withdrawal: Withdrawal
    file_name: str | None
    model_version: str | None
    because_of_subject: bool
    """The withdrawal row names this subject (else the image stood on them too, but was
    withdrawn for another cause first)."""


def withdrawals_touching(catalog: Catalog, subject_id: str) -> list[WithdrawnImage]:
    """Withdrawn images whose row names the subject or that stood on them (their model
    trained on them, or the image was conditioned on one of their records)."""
    columns = Withdrawal.columns()
    with catalog.read() as con:
        rows = con.execute(
            f"SELECT {', '.join('w.' + c for c in columns)}, i.file_name, i.model_version "
            "FROM withdrawals w LEFT JOIN release_images i USING (version, image_id) "
            f"WHERE w.subject_id = $s OR {_IMAGE_ON_SUBJECT} "
            "ORDER BY w.version, w.withdrawn_at, w.image_id", {"s": subject_id}).fetchall()
    out = []
    for r in rows:
        w = Withdrawal(**dict(zip(columns, r[: len(columns)], strict=True)))
        out.append(WithdrawnImage(w, r[-2], r[-1], w.subject_id == subject_id))
    return out


class PublishedImage(NamedTuple):
    version: str
    image_id: str
    file_name: str
    release_path: str


def published_on(catalog: Catalog, subject_id: str) -> list[PublishedImage]:
    """Images of any release that stand on the subject (their model saw them, or they were
    conditioned on one of their records) and that have no withdrawal row (whether their
    file is still there is for the caller to look)."""
    with catalog.read() as con:
        rows = con.execute(
            "SELECT i.version, i.image_id, i.file_name, r.release_path FROM release_images i "
            f"JOIN releases r USING (version) WHERE {_IMAGE_ON_SUBJECT} AND NOT EXISTS "
            "(SELECT 1 FROM withdrawals w WHERE w.version = i.version AND w.image_id = i.image_id) "
            "ORDER BY i.version, i.image_id", {"s": subject_id}).fetchall()
    return [PublishedImage(*r) for r in rows]
