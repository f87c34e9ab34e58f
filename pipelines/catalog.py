"""The pipeline catalog, `<home>/catalog.duckdb`: what the pipeline knows about its data.

The catalog is separate from the consent ledger so a long pipeline run never blocks a
consent officer (DESIGN.md, "Data home"). It is written in short transactions through
`open_duckdb`, which waits for other writers with backoff and raises `CatalogError`
when the file stays locked; bulk outputs (PNGs) are written as files first and recorded
afterwards, so a row never names a file that does not exist.

Tables so far (each added as one `CREATE TABLE IF NOT EXISTS` in `SCHEMA`, so creating
the schema is idempotent and later tables are one more entry):

- `sources`: one row per accepted source record; `image_path` (relative to the home)
  is the normalised, metadata-free PNG named by `content_hash`. `simulated` is true
  for demo records whose subjects are not real people.
- `quarantine`: every rejected file with a stable `reason`, the `error_class` that
  said so and a one-line `detail`; one row per (path, reason, file_sha256).
- `ingest_runs`: one row per finished ingest with its counts and configuration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from consentgen.duck import DEFAULT_MAX_WAIT_S, open_duckdb
from consentgen.errors import CatalogError
from consentgen.home import catalog_path, data_home

SOURCES_DIR = "sources"

SCHEMA: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS sources (
        record_id        VARCHAR PRIMARY KEY,
        subject_id       VARCHAR NOT NULL,
        label            INTEGER,
        content_hash     VARCHAR NOT NULL,
        file_sha256      VARCHAR NOT NULL,
        original_format  VARCHAR NOT NULL,
        original_mode    VARCHAR NOT NULL,
        original_width   INTEGER NOT NULL,
        original_height  INTEGER NOT NULL,
        original_frames  INTEGER NOT NULL,
        width            INTEGER NOT NULL,
        height           INTEGER NOT NULL,
        channels         INTEGER NOT NULL,
        image_path       VARCHAR NOT NULL,
        source_path      VARCHAR NOT NULL,
        decode_notes     VARCHAR NOT NULL,
        simulated        BOOLEAN NOT NULL,
        run_id           VARCHAR NOT NULL,
        ingested_at      TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS quarantine (
        path         VARCHAR NOT NULL,
        file_sha256  VARCHAR,
        reason       VARCHAR NOT NULL,
        error_class  VARCHAR NOT NULL,
        detail       VARCHAR NOT NULL,
        run_id       VARCHAR NOT NULL,
        quarantined_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ingest_runs (
        run_id        VARCHAR PRIMARY KEY,
        root          VARCHAR NOT NULL,
        manifest      VARCHAR,
        subject_tag   VARCHAR,
        started_at    TIMESTAMPTZ NOT NULL,
        finished_at   TIMESTAMPTZ NOT NULL,
        files_seen    INTEGER NOT NULL,
        accepted      INTEGER NOT NULL,
        duplicate     INTEGER NOT NULL,
        quarantined   INTEGER NOT NULL,
        config_json   VARCHAR NOT NULL
    )
    """,
]


class _Row(BaseModel):
    """A catalog row; its field order is the table's column order."""

    model_config = ConfigDict(frozen=True)
    table: ClassVar[str]

    @classmethod
    def columns(cls) -> list[str]:
        return list(cls.model_fields)


class SourceRecord(_Row):
    table: ClassVar[str] = "sources"

    record_id: str
    subject_id: str
    label: int | None
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


class QuarantineEntry(_Row):
    table: ClassVar[str] = "quarantine"

    path: str
    file_sha256: str | None
    reason: str
    error_class: str
    detail: str
    run_id: str
    quarantined_at: datetime


class IngestRun(_Row):
    table: ClassVar[str] = "ingest_runs"

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


class Catalog:
    """The catalog of one data home. Cheap to construct; every method opens briefly."""

    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, max_wait_s: float = DEFAULT_MAX_WAIT_S
    ) -> None:
        self.home = data_home(home)
        self.path = catalog_path(self.home)
        self.sources_dir = self.home / SOURCES_DIR
        self.max_wait_s = max_wait_s

    # --- connections -------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction on a fresh connection, schema ensured; rolled back on error."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open_duckdb(
            self.path, max_wait_s=self.max_wait_s, locked_error=CatalogError, what="catalog"
        ) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for statement in SCHEMA:
                    con.execute(statement)
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; a missing catalog reads as an empty one."""
        if not self.path.exists():
            self.ensure_schema()
        with open_duckdb(
            self.path,
            read_only=True,
            max_wait_s=self.max_wait_s,
            locked_error=CatalogError,
            what="catalog",
        ) as con:
            yield con

    def ensure_schema(self) -> None:
        """Create every table that does not exist yet (idempotent)."""
        with self.write():
            pass

    # --- writing -----------------------------------------------------------------------

    def record(
        self,
        sources: Sequence[SourceRecord] = (),
        quarantine: Sequence[QuarantineEntry] = (),
        runs: Sequence[IngestRun] = (),
    ) -> None:
        """Add rows in ONE transaction. A record id already present is left as it is;
        a quarantine entry already present for the same path, reason and file is not
        repeated (re-ingesting the same folder adds nothing)."""
        with self.write() as con:
            _insert(con, SourceRecord, sources, "ON CONFLICT DO NOTHING")
            _insert(
                con,
                QuarantineEntry,
                quarantine,
                "WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.path = b.path "
                "AND q.reason = b.reason AND q.file_sha256 IS NOT DISTINCT FROM b.file_sha256)",
            )
            _insert(con, IngestRun, runs, "")

    # --- reading -----------------------------------------------------------------------

    def sources(self, *, subject_id: str | None = None) -> list[SourceRecord]:
        where, params = ("WHERE subject_id = ?", [subject_id]) if subject_id else ("", [])
        return _select(self, SourceRecord, f"{where} ORDER BY record_id", params)

    def quarantined(self) -> list[QuarantineEntry]:
        return _select(self, QuarantineEntry, "ORDER BY quarantined_at, path", [])

    def runs(self) -> list[IngestRun]:
        return _select(self, IngestRun, "ORDER BY started_at", [])

    def source_keys(self) -> dict[str, tuple[str, str, int | None, str]]:
        """record_id -> (subject_id, content_hash, label, file_sha256), for dedupe."""
        with self.read() as con:
            rows = con.execute(
                "SELECT record_id, subject_id, content_hash, label, file_sha256 FROM sources"
            ).fetchall()
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def source_shapes(self) -> set[tuple[int, int, int]]:
        """The distinct (width, height, channels) of normalised sources."""
        with self.read() as con:
            rows = con.execute("SELECT DISTINCT width, height, channels FROM sources").fetchall()
        return {(int(w), int(h), int(c)) for w, h, c in rows}

    def image_file(self, record: SourceRecord) -> Path:
        """The absolute path of a record's normalised PNG."""
        return self.home / record.image_path


def _insert(
    con: duckdb.DuckDBPyConnection, model: type[_Row], rows: Sequence[_Row], tail: str
) -> None:
    """Bulk insert through an Arrow table: one statement however many rows."""
    if not rows:
        return
    columns = model.columns()
    batch = pa.Table.from_pylist([r.model_dump() for r in rows], schema=_arrow_schema(model))
    con.register("b", batch)
    try:
        names = ", ".join(columns)
        con.execute(f"INSERT INTO {model.table} ({names}) SELECT {names} FROM b {tail}")
    finally:
        con.unregister("b")


_ARROW_TYPES: dict[Any, pa.DataType] = {
    str: pa.string(),
    str | None: pa.string(),
    int: pa.int64(),
    int | None: pa.int64(),
    bool: pa.bool_(),
    datetime: pa.timestamp("us", tz="UTC"),
}


def _arrow_schema(model: type[_Row]) -> pa.Schema:
    return pa.schema(
        [(name, _ARROW_TYPES[field.annotation]) for name, field in model.model_fields.items()]
    )


def _select(catalog: Catalog, model: type[_Row], tail: str, params: list[Any]) -> list[Any]:
    columns = model.columns()
    with catalog.read() as con:
        rows = con.execute(
            f"SELECT {', '.join(columns)} FROM {model.table} {tail}", params
        ).fetchall()
    return [model(**dict(zip(columns, row, strict=True))) for row in rows]
