"""The catalog's tables, each declared once, as the pydantic model of its rows.

A model's fields are its table's columns, in order. The `CREATE TABLE` statement, the
Arrow schema that bulk inserts go through and each column's nullability all come from one
mapping of field annotations (`_TYPES`; NOT NULL unless the annotation is Optional), so a
table cannot drift from the rows that fill it. Keys are declared beside the fields
(`primary_key`), so DuckDB itself refuses a second row for the same thing.

`SCHEMA_VERSION`, recorded in `catalog_meta`, says which declaration a file was made
with: a file from a newer consentgen is refused rather than half understood, and a file
from before versioning (the same tables, mostly without keys) is rebuilt with keys.

The tables from `consent_snapshots` on are what builds made of the sources (one snapshot
per build): internal lineage that lives here and never ships.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, get_args

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from consentgen.duck import fetch_one
from consentgen.errors import CatalogError

SCHEMA_VERSION = 3
"""1: keys and versioning. 2: releases.status, withdrawal reasons and times, bans, erasures.
3: candidates.conditioned_on (img2img lineage), releases.inputs_digest, ingest_runs.label_tag;
labels as text
(sources, eligible_records, candidates, release_images: class names or integers' decimal
text) and snapshot_classes (each build's class list)."""
"""Bump with every change to a table, and teach `ensure_schema` to bring older files up."""

# One line per annotation: (DuckDB type, Arrow type). Every int is BIGINT because the
# Arrow side is int64 anyway, and seeds and ledger sequence numbers need 64 bits.
_TYPES: dict[type, tuple[str, pa.DataType]] = {
    str: ("VARCHAR", pa.string()),
    int: ("BIGINT", pa.int64()),
    float: ("DOUBLE", pa.float64()),
    bool: ("BOOLEAN", pa.bool_()),
    datetime: ("TIMESTAMPTZ", pa.timestamp("us", tz="UTC")),
}


class Column(NamedTuple):
    name: str
    sql_type: str
    arrow_type: pa.DataType
    nullable: bool


def _column(name: str, annotation: Any) -> Column:
    args = get_args(annotation)
    nullable = type(None) in args
    base = [a for a in args if a is not type(None)] if nullable else [annotation]
    if len(base) != 1 or base[0] not in _TYPES:
        raise TypeError(f"catalog column {name}: no column type for {annotation!r}")
    sql_type, arrow_type = _TYPES[base[0]]
    return Column(name, sql_type, arrow_type, nullable)


class Row(BaseModel):
    """A catalog row; its field order is the table's column order."""

    model_config = ConfigDict(frozen=True)
    table: ClassVar[str]
    primary_key: ClassVar[tuple[str, ...]]
    defaults: ClassVar[dict[str, str]] = {}
    """SQL defaults of columns added after a table first shipped: what an older file's
    rows get when it is brought up to date (new columns are Optional or have one)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse, at import, a key that names a missing or nullable column."""
        super().__pydantic_init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "primary_key", None), tuple):
            raise TypeError(f"{cls.__name__}: declare primary_key (empty, with a comment why)")
        by_name = {c.name: c for c in columns_of(cls)}
        for name in cls.primary_key:
            if name not in by_name or by_name[name].nullable:
                raise TypeError(f"{cls.__name__}: key column {name} must be a non-Optional field")

    @classmethod
    def columns(cls) -> list[str]:
        return list(cls.model_fields)


@cache
def columns_of(model: type[Row]) -> tuple[Column, ...]:
    return tuple(_column(name, f.annotation) for name, f in model.model_fields.items())


@cache
def arrow_schema(model: type[Row]) -> pa.Schema:
    return pa.schema([(c.name, c.arrow_type, c.nullable) for c in columns_of(model)])


def ddl(model: type[Row], *, name: str | None = None) -> str:
    """`CREATE TABLE IF NOT EXISTS` for `model` (under another `name` while migrating)."""
    lines = [f"{c.name} {c.sql_type}{'' if c.nullable else ' NOT NULL'}"
             + (f" DEFAULT {model.defaults[c.name]}" if c.name in model.defaults else "")
             for c in columns_of(model)]
    if model.primary_key:
        lines.append(f"PRIMARY KEY ({', '.join(model.primary_key)})")
    body = ",\n    ".join(lines)
    return f"CREATE TABLE IF NOT EXISTS {name or model.table} (\n    {body}\n)"


# --- the tables ------------------------------------------------------------------------


class SourceRecord(Row):
    """One accepted source record; `image_path` (relative to the home) is the normalised,
    metadata-free PNG named by `content_hash`. `simulated`: a demo record whose subject is
    not a real person."""

    table: ClassVar[str] = "sources"
    primary_key: ClassVar[tuple[str, ...]] = ("record_id",)

    record_id: str
    subject_id: str
    label: str | None
    """The class (`consentgen.labels.canonical_label`: a name, or an integer's decimal
    text); None for a record without one."""
    content_hash: str
    file_sha256: str
    original_format: str
    original_mode: str
    original_width: int
    original_height: int
    original_frames: int
    width: int
    height: int
    channels: int
    image_path: str
    source_path: str
    decode_notes: str
    simulated: bool
    run_id: str
    ingested_at: datetime


class QuarantineEntry(Row):
    """A rejected file with a stable `reason`, the `error_class` that said so and a
    one-line `detail`; one row per (path, reason, file_sha256)."""

    table: ClassVar[str] = "quarantine"
    # Keyless on purpose: the natural key includes `file_sha256`, which is NULL for a file
    # that could not be read, and a key column cannot be NULL (a UNIQUE constraint would
    # treat two NULLs as different). `Catalog.record`, the one writer, keeps the
    # one-row-per-(path, reason, file_sha256) rule with IS NOT DISTINCT FROM; a surrogate
    # key would be a fourth column restating those three.
    primary_key: ClassVar[tuple[str, ...]] = ()

    path: str
    file_sha256: str | None
    reason: str
    error_class: str
    detail: str
    run_id: str
    quarantined_at: datetime


class IngestRun(Row):
    """One finished ingest with its counts and configuration."""

    table: ClassVar[str] = "ingest_runs"
    primary_key: ClassVar[tuple[str, ...]] = ("run_id",)

    run_id: str
    root: str
    manifest: str | None
    subject_tag: str | None
    started_at: datetime
    finished_at: datetime
    files_seen: int
    accepted: int
    duplicate: int
    quarantined: int
    config_json: str
    label_tag: str | None = None
    """The DICOM tag labels were taken from (`--label-from-tag`), if any."""


class Snapshot(Row):
    """The ledger head (seq, hash) and the time a build honoured."""

    table: ClassVar[str] = "consent_snapshots"
    primary_key: ClassVar[tuple[str, ...]] = ("snapshot_id",)

    snapshot_id: str
    purpose: str
    head_seq: int
    head_hash: str
    taken_at: datetime
    run_id: str | None = None


class EligibleRecord(Row):
    """A source a snapshot may use, with its SISA shard and train/holdout role."""

    table: ClassVar[str] = "eligible_records"
    primary_key: ClassVar[tuple[str, ...]] = ("snapshot_id", "record_id")

    snapshot_id: str
    record_id: str
    subject_id: str
    label: str
    """One of the snapshot's classes (`snapshot_classes`); an unconditional build's records
    all carry its one class, `labels.unlabelled`."""
    shard: int
    role: str


class SnapshotClass(Row):
    """One class of a snapshot's class list: what class index `class_index` of every shard
    model of the build stands for. Shard training, candidates, replacements, figures and
    the release all read this one list, so they agree on the mapping; `conditional` (the
    same on every row of a snapshot) says whether the models are class-conditional (else
    the list is the one class `labels.unlabelled`)."""

    table: ClassVar[str] = "snapshot_classes"
    primary_key: ClassVar[tuple[str, ...]] = ("snapshot_id", "class_index")

    snapshot_id: str
    class_index: int
    label: str
    conditional: bool


class Exclusion(Row):
    """A source a snapshot left out, and why (a `reasons.ExclusionReason`)."""

    table: ClassVar[str] = "exclusions"
    primary_key: ClassVar[tuple[str, ...]] = ("snapshot_id", "record_id")

    snapshot_id: str
    record_id: str
    subject_id: str
    reason: str


class ShardModel(Row):
    """One shard checkpoint."""

    table: ClassVar[str] = "shard_models"
    primary_key: ClassVar[tuple[str, ...]] = ("model_version",)

    model_version: str
    shard: int
    snapshot_id: str
    fingerprint: str
    n_records: int
    model_path: str
    epsilon: float | None
    final_loss: float | None
    trained_at: datetime


class ModelRecord(Row):
    """Exactly the records a shard model saw."""

    table: ClassVar[str] = "model_records"
    primary_key: ClassVar[tuple[str, ...]] = ("model_version", "record_id")

    model_version: str
    record_id: str
    subject_id: str


class Candidate(Row):
    """A sample with the shard and model version that made it."""

    table: ClassVar[str] = "candidates"
    primary_key: ClassVar[tuple[str, ...]] = ("snapshot_id", "candidate_id")

    candidate_id: str
    snapshot_id: str
    shard: int
    model_version: str
    label: str
    seed: int
    image_path: str
    created_at: datetime
    conditioned_on: str | None = None
    """img2img: the one record this candidate was conditioned on (its whole lineage);
    None for a model's sample, whose lineage is every record the model saw."""


class AuditRow(Row):
    """One audit round's nearest-source distances for a candidate."""

    table: ClassVar[str] = "audit_results"
    primary_key: ClassVar[tuple[str, ...]] = ("snapshot_id", "candidate_id", "round")

    snapshot_id: str
    candidate_id: str
    round: int
    phash_distance: int
    pixel_l2: float
    patch_l2: float
    embedding_cosine: float
    nearest_phash: str | None
    nearest_pixel: str | None
    nearest_patch: str | None
    nearest_embedding: str | None
    flagged: bool
    kept: bool


class Release(Row):
    """What was published, and the consent state it honoured.

    `status` is `pending` from the moment publish records the release's image rows (before
    its last consent read, so a reconcile at any moment sees them) until its folder is
    renamed into place, then `published`; a pending row whose folder never appeared is a
    crashed publish, which the sweep removes."""

    table: ClassVar[str] = "releases"
    primary_key: ClassVar[tuple[str, ...]] = ("version",)
    defaults: ClassVar[dict[str, str]] = {"status": "'published'"}

    version: str
    snapshot_id: str
    head_seq: int
    head_hash: str
    n_images: int
    release_path: str
    created_at: datetime
    status: str = "published"
    inputs_digest: str | None = None
    """SHA-256 over what decided the release (consent head, the eligible records and their
    pixels, the settings): a build whose digest equals the newest release's publishes
    nothing (`pipelines.steps.freshness`)."""


class ReleaseImage(Row):
    """A published image with its lineage."""

    table: ClassVar[str] = "release_images"
    primary_key: ClassVar[tuple[str, ...]] = ("version", "image_id")

    version: str
    image_id: str
    candidate_id: str
    label: str
    shard: int
    model_version: str
    file_name: str


class Withdrawal(Row):
    """An image withdrawn from a release, why, and how long after the cause.

    `reason` is a `reasons.WithdrawalReason`. For a revoke (by the subject or by an
    operator) `event_seq` / `revoked_recorded_at` name the ledger event and `latency_s`
    runs from its recorded time; `effective_at` is when consent ended (the revoke's
    effective time, or the grant's expiry) and `latency_effective_s` runs from it. An
    image taken down on its own (`image_withdrawn`) names no subject. `note` is the
    operator's text; it stays here and never ships."""

    table: ClassVar[str] = "withdrawals"
    primary_key: ClassVar[tuple[str, ...]] = ("version", "image_id")

    version: str
    image_id: str
    subject_id: str | None
    event_seq: int | None
    revoked_recorded_at: datetime | None
    withdrawn_at: datetime
    latency_s: float | None
    reason: str | None = None
    effective_at: datetime | None = None
    latency_effective_s: float | None = None
    note: str | None = None


class Ban(Row):
    """What may never be published again: a candidate (`kind` = candidate, `value` its id)
    or its pixels (`kind` = pixels, `value` the sha256 of the decoded pixels), whatever
    model or build would produce them again."""

    table: ClassVar[str] = "bans"
    primary_key: ClassVar[tuple[str, ...]] = ("kind", "value")

    kind: str
    value: str
    reason: str
    version: str | None
    image_id: str | None
    banned_at: datetime


class Erasure(Row):
    """The record of erasure: one file (or folder) that held a subject's pixels or what was
    learnt from them, deleted. `kind`: source, checkpoint, candidate or temp; `ref` the
    record id, model version, candidate id or folder name; `path` home-relative."""

    table: ClassVar[str] = "erasures"
    primary_key: ClassVar[tuple[str, ...]] = ("subject_id", "kind", "ref")

    subject_id: str
    kind: str
    ref: str
    path: str
    content_hash: str | None
    erased_at: datetime


class CatalogMeta(Row):
    """Facts about the file itself; `schema_version` is the one there is."""

    table: ClassVar[str] = "catalog_meta"
    primary_key: ClassVar[tuple[str, ...]] = ("key",)

    key: str
    value: str


TABLES: tuple[type[Row], ...] = (
    SourceRecord, QuarantineEntry, IngestRun, Snapshot, EligibleRecord, SnapshotClass,
    Exclusion, ShardModel, ModelRecord, Candidate, AuditRow, Release, ReleaseImage, Withdrawal,
    Ban, Erasure,
)
"""Every data table, in creation order (`catalog_meta` is not one of them)."""


# --- the version of a file -------------------------------------------------------------


def stored_version(con: duckdb.DuckDBPyConnection, path: Path) -> int | None:
    """The file's schema version: None for an empty file, 0 for one made before versioning.

    Raises CatalogError for a file made by a newer consentgen, whose tables this one
    might misread or damage.
    """
    names = _table_names(con)
    if CatalogMeta.table not in names:
        return 0 if names & {m.table for m in TABLES} else None
    found = fetch_one(con, "SELECT value FROM catalog_meta WHERE key = 'schema_version'")
    if found is None or not str(found[0]).isdigit():
        raise CatalogError(f"catalog {path} has no readable schema_version in catalog_meta")
    version = int(found[0])
    if version > SCHEMA_VERSION:
        raise CatalogError(
            f"catalog {path} has schema version {version}, newer than this consentgen's "
            f"{SCHEMA_VERSION}; upgrade consentgen to use it"
        )
    return version


def ensure_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Bring the file to SCHEMA_VERSION inside the caller's transaction: create the tables
    of a fresh file, rebuild those of a pre-versioning file with keys, or refuse."""
    version = stored_version(con, path)
    if version == SCHEMA_VERSION:
        return
    present = _table_names(con)
    if version == 0:
        for model in TABLES:
            if model.table in present:
                _rebuild_with_key(con, path, model)
    for model in TABLES:
        if model.table in present:
            _add_missing_columns(con, model)
            _retype_text_columns(con, path, model)
    for model in (*TABLES, CatalogMeta):
        con.execute(ddl(model))
    con.execute(
        "INSERT INTO catalog_meta VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [str(SCHEMA_VERSION)],
    )


def _rebuild_with_key(con: duckdb.DuckDBPyConnection, path: Path, model: type[Row]) -> None:
    """Swap a pre-versioning table for its keyed declaration, dropping exact duplicate rows;
    refuse when two different rows share a key (only a person can say which is right)."""
    table, key = model.table, ", ".join(model.primary_key)
    present = set(_column_names(con, table))
    names = ", ".join(c for c in model.columns() if c in present)  # added columns: defaults
    try:
        clash = key and fetch_one(con, f"SELECT {key} FROM (SELECT DISTINCT {names} FROM {table}) "
                                  f"GROUP BY {key} HAVING count(*) > 1 LIMIT 1")
        if clash:
            raise CatalogError(
                f"catalog {path} predates schema versioning and cannot be migrated: table "
                f"{table} has different rows with the same key ({key}) = {tuple(clash)}; "
                "keep one of them and try again"
            )
        con.execute(ddl(model, name=f"{table}__keyed"))
        con.execute(f"INSERT INTO {table}__keyed ({names}) SELECT DISTINCT {names} FROM {table}")
        con.execute(f"DROP TABLE {table}")
        con.execute(f"ALTER TABLE {table}__keyed RENAME TO {table}")
    except duckdb.Error as exc:
        raise CatalogError(f"catalog {path}: cannot migrate table {table}: {_first_line(exc)}") from exc


def _add_missing_columns(con: duckdb.DuckDBPyConnection, model: type[Row]) -> None:
    """Columns declared since the file was made, added with their defaults (or NULL)."""
    have = set(_column_names(con, model.table))
    for column in columns_of(model):
        if column.name not in have:
            default = f" DEFAULT {model.defaults[column.name]}" if column.name in model.defaults else ""
            con.execute(f"ALTER TABLE {model.table} ADD COLUMN {column.name} {column.sql_type}{default}")


def _retype_text_columns(con: duckdb.DuckDBPyConnection, path: Path, model: type[Row]) -> None:
    """Columns declared as text but stored otherwise (labels were BIGINT before version 3)
    become VARCHAR, each value its decimal text."""
    stored = dict(con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
        "AND schema_name = 'main'", [model.table]).fetchall())
    for column in columns_of(model):
        if column.sql_type == "VARCHAR" and stored.get(column.name, "VARCHAR") != "VARCHAR":
            try:
                con.execute(f"ALTER TABLE {model.table} ALTER COLUMN {column.name} "
                            "SET DATA TYPE VARCHAR")
            except duckdb.Error as exc:
                raise CatalogError(f"catalog {path}: cannot convert {model.table}.{column.name} "
                                   f"to text: {_first_line(exc)}") from exc


def _column_names(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' "
        "ORDER BY column_index", [table]).fetchall()]


def _table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE "
                       "database_name = current_database() AND schema_name = 'main'").fetchall()
    return {r[0] for r in rows}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
