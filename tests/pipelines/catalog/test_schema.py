"""The catalog's tables as declared once: generated DDL, keys, the schema version, migration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import duckdb
import pytest

from consentgen.errors import CatalogError
from pipelines.catalog import (
    SCHEMA_VERSION,
    TABLES,
    Ban,
    Catalog,
    EligibleRecord,
    QuarantineEntry,
    Release,
    Row,
    Snapshot,
    SourceRecord,
    Withdrawal,
)
from pipelines.catalog.schema import CatalogMeta, ddl
from tests.pipelines.catalog.pre_version_ddl import PRE_VERSION_SCHEMA

KEYS = {
    "sources": ["record_id"],
    "ingest_runs": ["run_id"],
    "consent_snapshots": ["snapshot_id"],
    "eligible_records": ["snapshot_id", "record_id"],
    "snapshot_classes": ["snapshot_id", "class_index"],
    "exclusions": ["snapshot_id", "record_id"],
    "shard_models": ["model_version"],
    "model_records": ["model_version", "record_id"],
    "candidates": ["snapshot_id", "candidate_id"],
    "audit_results": ["snapshot_id", "candidate_id", "round"],
    "releases": ["version"],
    "release_images": ["version", "image_id"],
    "withdrawals": ["version", "image_id"],
    "bans": ["kind", "value"],
    "erasures": ["subject_id", "kind", "ref"],
    "catalog_meta": ["key"],
}
NULLABLE = {
    ("sources", "label"),
    ("quarantine", "file_sha256"),
    ("ingest_runs", "manifest"),
    ("ingest_runs", "subject_tag"),
    ("ingest_runs", "label_tag"),
    ("consent_snapshots", "run_id"),
    ("shard_models", "epsilon"),
    ("shard_models", "final_loss"),
    ("audit_results", "nearest_phash"),
    ("audit_results", "nearest_pixel"),
    ("audit_results", "nearest_patch"),
    ("audit_results", "nearest_embedding"),
    ("withdrawals", "subject_id"),
    ("candidates", "conditioned_on"),
    ("releases", "inputs_digest"),
    ("withdrawals", "event_seq"),
    ("withdrawals", "revoked_recorded_at"),
    ("withdrawals", "latency_s"),
    ("withdrawals", "reason"),
    ("withdrawals", "effective_at"),
    ("withdrawals", "latency_effective_s"),
    ("withdrawals", "note"),
    ("bans", "version"),
    ("bans", "image_id"),
    ("erasures", "content_hash"),
}
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_SAMPLE = {str: "a", int: 1, float: 0.5, bool: True, datetime: T0}


def sample(model: type[Row], **changes: Any) -> Row:
    """A valid row of `model` with every field set (Optional ones too)."""
    values = {}
    for name, field in model.model_fields.items():
        kinds = get_args(field.annotation) or (field.annotation,)
        kind = next(t for t in (bool, str, int, float, datetime) if t in kinds)
        values[name] = ("1" if name == "label"  # an integer's text: a label of every version
                        else f"{name}-a" if kind is str else _SAMPLE[kind])
    return model(**{**values, **changes})


def other(value: Any) -> Any:
    """A different value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)
    return value + ("-b" if isinstance(value, str) else 1)


def raw(path: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    with duckdb.connect(str(path)) as con:
        return con.execute(sql, params or []).fetchall()


def insert_raw(con: duckdb.DuckDBPyConnection, row: Row) -> None:
    names = row.columns()
    con.execute(f"INSERT INTO {row.table} ({', '.join(names)}) VALUES "
                f"({', '.join('?' * len(names))})", [getattr(row, n) for n in names])


def test_generated_ddl_has_every_field_in_order_with_its_nullability_and_key() -> None:
    con = duckdb.connect()
    for model in (*TABLES, CatalogMeta):
        con.execute(ddl(model))
    columns = con.execute(
        "SELECT table_name, column_name, is_nullable, data_type FROM duckdb_columns() WHERE NOT internal "
        "ORDER BY table_name, column_index"
    ).fetchall()
    assert {t for t, *_ in columns} == {m.table for m in (*TABLES, CatalogMeta)}
    for model in (*TABLES, CatalogMeta):
        assert [c for t, c, *_ in columns if t == model.table] == list(model.model_fields)
    assert {(t, c) for t, c, nullable, _ in columns if nullable} == NULLABLE
    types = {(t, c): d for t, c, _, d in columns}
    assert types["consent_snapshots", "head_seq"] == types["sources", "width"] == "BIGINT"
    assert types["sources", "ingested_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["sources", "simulated"] == "BOOLEAN"
    assert types["audit_results", "pixel_l2"] == "DOUBLE"
    assert types["quarantine", "path"] == "VARCHAR"
    assert {types[t, "label"] for t in ("sources", "eligible_records", "candidates",
                                        "release_images", "snapshot_classes")} == {"VARCHAR"}
    keys = con.execute(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
        "WHERE constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    assert dict(keys) == KEYS  # quarantine is keyless on purpose (nullable file_sha256)


@pytest.mark.parametrize("model", [m for m in TABLES if m.primary_key], ids=lambda m: m.table)
def test_each_key_is_enforced_with_a_catalog_error(home: Path, model: type[Row]) -> None:
    catalog = Catalog(home)
    row = sample(model)
    catalog.add([row])
    loose = next(n for n in model.columns() if n not in model.primary_key)
    key_text = f"({', '.join(model.primary_key)})"
    with pytest.raises(CatalogError, match=rf"catalog table {model.table} .*{key_text}") as err:
        catalog.add([row.model_copy(update={loose: other(getattr(row, loose))})])
    assert not isinstance(err.value, duckdb.Error) and "\n" not in str(err.value)
    for name in model.primary_key:  # each key column is part of the key
        catalog.add([row.model_copy(update={name: other(getattr(row, name))})])
    assert len(catalog.select(model)) == 1 + len(model.primary_key)


def test_a_key_violation_records_nothing_from_the_write(home: Path) -> None:
    catalog = Catalog(home)
    catalog.add([sample(Snapshot)])
    fresh = sample(Withdrawal)
    with pytest.raises(CatalogError, match="consent_snapshots"):
        catalog.add([fresh], [sample(Snapshot, purpose="again")])
    assert catalog.select(Withdrawal) == []
    duplicate_in_batch = [sample(EligibleRecord), sample(EligibleRecord, shard=2)]
    with pytest.raises(CatalogError, match=r"eligible_records .*\(snapshot_id, record_id\)"):
        catalog.add(duplicate_in_batch)
    assert catalog.select(EligibleRecord) == []


def test_quarantine_stays_one_row_per_path_reason_and_file(home: Path) -> None:
    catalog = Catalog(home)
    unreadable = sample(QuarantineEntry, file_sha256=None)
    entries = [unreadable, sample(QuarantineEntry)]
    catalog.record(quarantine=entries)
    catalog.record(quarantine=[e.model_copy(update={"run_id": "later"}) for e in entries])
    assert sorted(catalog.quarantined(), key=lambda e: e.file_sha256 or "") == [unreadable, entries[1]]


def test_a_fresh_home_records_the_schema_version(home: Path) -> None:
    catalog = Catalog(home)
    assert catalog.select(Snapshot) == []  # reading a missing catalog creates it
    assert raw(catalog.path, "SELECT key, value FROM catalog_meta") == [
        ("schema_version", str(SCHEMA_VERSION))
    ]
    catalog.add([sample(Snapshot)])
    assert raw(catalog.path, "SELECT count(*) FROM catalog_meta") == [(1,)]


def test_the_schema_is_checked_once_per_process_not_per_write(home: Path) -> None:
    catalog = Catalog(home)
    catalog.ensure_schema()
    # Out of band, behind this process's back: neither is noticed, as nothing is re-run.
    raw(catalog.path, "DROP TABLE withdrawals")
    raw(catalog.path, "UPDATE catalog_meta SET value = ?", [str(SCHEMA_VERSION + 1)])
    catalog.add([sample(Snapshot)])
    Catalog(home).add([sample(EligibleRecord)])
    assert raw(catalog.path, "SELECT count(*) FROM duckdb_tables() "
               "WHERE table_name = 'withdrawals'") == [(0,)]


def test_a_catalog_from_a_newer_consentgen_is_refused(home: Path) -> None:
    path = Catalog(home).path
    with duckdb.connect(str(path)) as con:
        for model in (*TABLES, CatalogMeta):
            con.execute(ddl(model))
        con.execute("INSERT INTO catalog_meta VALUES ('schema_version', ?)",
                    [str(SCHEMA_VERSION + 1)])
    newer = rf"schema version {SCHEMA_VERSION + 1}, newer than this consentgen's {SCHEMA_VERSION}"
    with pytest.raises(CatalogError, match=newer):
        Catalog(home).select(Snapshot)
    with pytest.raises(CatalogError, match=newer):
        Catalog(home).add([sample(Snapshot)])
    assert raw(path, "SELECT value FROM catalog_meta") == [(str(SCHEMA_VERSION + 1),)]
    assert raw(path, "SELECT count(*) FROM consent_snapshots") == [(0,)]


def _pre_version_columns() -> dict[str, list[str]]:
    con = duckdb.connect()
    for statement in PRE_VERSION_SCHEMA:
        con.execute(statement)
    out: dict[str, list[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                                     "WHERE NOT internal ORDER BY column_index").fetchall():
        out.setdefault(table, []).append(column)
    return out


PRE_VERSION_COLUMNS = _pre_version_columns()
ADDED_SINCE = {"releases": {"status": "published", "inputs_digest": None},
               "candidates": {"conditioned_on": None},
               "ingest_runs": {"label_tag": None},
               "withdrawals": {"reason": None, "effective_at": None, "latency_effective_s": None,
                               "note": None}}


def as_pre_version(model: type[Row], **changes: Any) -> Row:
    """A sample row of a table that existed before versioning, its later columns at the
    values a migrated file gives them."""
    return sample(model, **{**ADDED_SINCE.get(model.table, {}), **changes})


def pre_version_catalog(path: Path, rows: list[Row]) -> None:
    with duckdb.connect(str(path)) as con:
        for statement in PRE_VERSION_SCHEMA:
            con.execute(statement)
        for row in rows:
            names = PRE_VERSION_COLUMNS[row.table]
            con.execute(f"INSERT INTO {row.table} ({', '.join(names)}) VALUES "
                        f"({', '.join('?' * len(names))})", [getattr(row, n) for n in names])


def test_a_pre_version_catalog_is_migrated_with_its_rows(home: Path) -> None:
    path = Catalog(home).path
    old = [m for m in TABLES if m.table in PRE_VERSION_COLUMNS]
    assert len(old) == 13 and len(TABLES) > len(old)  # tables were added since
    rows = [as_pre_version(m) for m in old]
    twice = [as_pre_version(m) for m in old if m.table not in ("sources", "consent_snapshots",
                                                               "ingest_runs", "shard_models",
                                                               "candidates", "releases")]
    second_source = sample(SourceRecord, record_id="zz", label=None)
    pre_version_catalog(path, [*rows, *twice, second_source])  # exact duplicates: old tables lacked keys
    assert raw(path, "SELECT count(*) FROM eligible_records") == [(2,)]

    catalog = Catalog(home)
    for row in rows:
        expected = [row, second_source] if isinstance(row, SourceRecord) else [row]
        assert catalog.select(type(row), "ORDER BY 1") == expected
    assert raw(path, "SELECT value FROM catalog_meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert raw(path, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'sources' "
               "AND column_name = 'width'") == [("BIGINT",)]
    with pytest.raises(CatalogError, match="eligible_records"):
        catalog.add([sample(EligibleRecord)])


def test_a_pre_version_catalog_with_rows_that_clash_on_a_key_is_refused(home: Path) -> None:
    path = Catalog(home).path
    clash = [sample(EligibleRecord), sample(EligibleRecord, shard=7)]
    pre_version_catalog(path, [sample(SourceRecord), *clash])
    refused = r"predates schema versioning and cannot be migrated: table eligible_records .*\(snapshot_id, record_id\)"
    with pytest.raises(CatalogError, match=refused):
        Catalog(home).select(EligibleRecord)
    with pytest.raises(CatalogError, match=refused):
        Catalog(home).add([sample(Snapshot)])
    # one transaction: sources (rebuilt before eligible_records) is left as it was
    assert raw(path, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'catalog_meta'") == [(0,)]
    assert raw(path, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'sources' "
               "AND column_name = 'width'") == [("INTEGER",)]
    assert raw(path, "SELECT count(*) FROM eligible_records") == [(2,)]


def test_a_version_1_catalog_gains_the_added_columns_and_tables(home: Path) -> None:
    """A keyed, versioned file from before releases.status / withdrawal reasons / bans."""
    path = Catalog(home).path
    release = as_pre_version(Release)
    with duckdb.connect(str(path)) as con:
        for model in TABLES:
            if model.table in PRE_VERSION_COLUMNS:
                cols = [c for c in ddl(model).splitlines() if c.strip().split(" ")[0]
                        not in ADDED_SINCE.get(model.table, {})]
                con.execute("\n".join(cols).replace(",\n)", "\n)"))
        con.execute(ddl(CatalogMeta))
        con.execute("INSERT INTO catalog_meta VALUES ('schema_version', '1')")
        names = PRE_VERSION_COLUMNS["releases"]
        con.execute(f"INSERT INTO releases ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                    [getattr(release, n) for n in names])
    catalog = Catalog(home)
    assert catalog.select(Release) == [release]  # status: published
    catalog.add([sample(Ban)])
    assert raw(path, "SELECT value FROM catalog_meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)]


LABEL_TABLES = ("sources", "eligible_records", "candidates", "release_images")


def test_a_version_2_catalog_gets_text_labels_and_class_lists(home: Path) -> None:
    """Before version 3 labels were BIGINT: they become their decimal text, rows kept."""
    path = Catalog(home).path
    v3_only = {"candidates": {"conditioned_on"}, "releases": {"inputs_digest"},
               "ingest_runs": {"label_tag"}}
    rows = {m.table: sample(m, label="12") if "label" in m.model_fields else sample(m)
            for m in TABLES if m.table != "snapshot_classes"}
    with duckdb.connect(str(path)) as con:
        for model in TABLES:
            if model.table == "snapshot_classes":
                continue
            lines = [c for c in ddl(model).splitlines()
                     if c.strip().split(" ")[0] not in v3_only.get(model.table, set())]
            con.execute("\n".join(lines).replace(",\n)", "\n)").replace(
                "label VARCHAR", "label BIGINT"))
        con.execute(ddl(CatalogMeta))
        con.execute("INSERT INTO catalog_meta VALUES ('schema_version', '2')")
        for table, row in rows.items():
            names = [n for n in row.columns() if n not in v3_only.get(table, set())]
            values = [int(row.label) if n == "label" else getattr(row, n) for n in names]
            con.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                        f"({', '.join('?' * len(names))})", values)
    assert raw(path, "SELECT label FROM candidates") == [(12,)]

    catalog = Catalog(home)
    catalog.ensure_schema()
    for table in LABEL_TABLES:
        assert raw(path, "SELECT data_type FROM duckdb_columns() WHERE table_name = ? "
                   "AND column_name = 'label'", [table]) == [("VARCHAR",)]
        assert raw(path, f"SELECT label FROM {table}") == [("12",)]
    model = next(m for m in TABLES if m.table == "candidates")
    assert catalog.select(model) == [rows["candidates"].model_copy(update={"conditioned_on": None})]
    assert raw(path, "SELECT count(*) FROM snapshot_classes") == [(0,)]
    assert raw(path, "SELECT value FROM catalog_meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)]
