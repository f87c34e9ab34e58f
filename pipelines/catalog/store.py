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

Builds add (one snapshot per build; internal lineage lives here and never ships):

- `consent_snapshots`: the ledger head (seq, hash) and time a build honoured.
- `eligible_records` / `exclusions`: each source's fate in that snapshot (shard and
  train/holdout role, or the reason it was left out: a `reasons.ExclusionReason`).
- `shard_models` / `model_records`: each shard checkpoint and exactly the records it saw.
- `candidates` / `audit_results`: samples with their shard and model version, and every
  audit round's nearest-source distances.
- `releases` / `release_images`: what was published, image by image (with its lineage).
- `withdrawals`: every image withdrawn after a revocation, with the latency.
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
    # --- what builds made of the sources (issue 7): snapshots, shards, lineage, releases

    """
    CREATE TABLE IF NOT EXISTS consent_snapshots (
        snapshot_id    VARCHAR PRIMARY KEY,
        purpose        VARCHAR NOT NULL,
        head_seq       BIGINT NOT NULL,
        head_hash      VARCHAR NOT NULL,
        taken_at       TIMESTAMPTZ NOT NULL,
        run_id         VARCHAR
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS eligible_records (
        snapshot_id  VARCHAR NOT NULL,
        record_id    VARCHAR NOT NULL,
        subject_id   VARCHAR NOT NULL,
        label        INTEGER NOT NULL,
        shard        INTEGER NOT NULL,
        role         VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS exclusions (
        snapshot_id  VARCHAR NOT NULL,
        record_id    VARCHAR NOT NULL,
        subject_id   VARCHAR NOT NULL,
        reason       VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS shard_models (
        model_version  VARCHAR PRIMARY KEY,
        shard          INTEGER NOT NULL,
        snapshot_id    VARCHAR NOT NULL,
        fingerprint    VARCHAR NOT NULL,
        n_records      INTEGER NOT NULL,
        model_path     VARCHAR NOT NULL,
        epsilon        DOUBLE,
        final_loss     DOUBLE,
        trained_at     TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS model_records (
        model_version  VARCHAR NOT NULL,
        record_id      VARCHAR NOT NULL,
        subject_id     VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS candidates (
        candidate_id   VARCHAR NOT NULL,
        snapshot_id    VARCHAR NOT NULL,
        shard          INTEGER NOT NULL,
        model_version  VARCHAR NOT NULL,
        label          INTEGER NOT NULL,
        seed           BIGINT NOT NULL,
        image_path     VARCHAR NOT NULL,
        created_at     TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (snapshot_id, candidate_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS audit_results (
        snapshot_id        VARCHAR NOT NULL,
        candidate_id       VARCHAR NOT NULL,
        round              INTEGER NOT NULL,
        phash_distance     INTEGER NOT NULL,
        pixel_l2           DOUBLE NOT NULL,
        patch_l2           DOUBLE NOT NULL,
        embedding_cosine   DOUBLE NOT NULL,
        nearest_phash      VARCHAR,
        nearest_pixel      VARCHAR,
        nearest_patch      VARCHAR,
        nearest_embedding  VARCHAR,
        flagged            BOOLEAN NOT NULL,
        kept               BOOLEAN NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS releases (
        version        VARCHAR PRIMARY KEY,
        snapshot_id    VARCHAR NOT NULL,
        head_seq       BIGINT NOT NULL,
        head_hash      VARCHAR NOT NULL,
        n_images       INTEGER NOT NULL,
        release_path   VARCHAR NOT NULL,
        created_at     TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS release_images (
        version        VARCHAR NOT NULL,
        image_id       VARCHAR NOT NULL,
        candidate_id   VARCHAR NOT NULL,
        label          INTEGER NOT NULL,
        shard          INTEGER NOT NULL,
        model_version  VARCHAR NOT NULL,
        file_name      VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS withdrawals (
        version        VARCHAR NOT NULL,
        image_id       VARCHAR NOT NULL,
        subject_id     VARCHAR NOT NULL,
        event_seq      BIGINT NOT NULL,
        revoked_recorded_at TIMESTAMPTZ NOT NULL,
        withdrawn_at   TIMESTAMPTZ NOT NULL,
        latency_s      DOUBLE NOT NULL
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


class Snapshot(_Row):
    table: ClassVar[str] = "consent_snapshots"

    snapshot_id: str
    purpose: str
    head_seq: int
    head_hash: str
    taken_at: datetime
    run_id: str | None = None


class EligibleRecord(_Row):
    table: ClassVar[str] = "eligible_records"

    snapshot_id: str
    record_id: str
    subject_id: str
    label: int
    shard: int
    role: str


class Exclusion(_Row):
    table: ClassVar[str] = "exclusions"

    snapshot_id: str
    record_id: str
    subject_id: str
    reason: str


class ShardModel(_Row):
    table: ClassVar[str] = "shard_models"

    model_version: str
    shard: int
    snapshot_id: str
    fingerprint: str
    n_records: int
    model_path: str
    epsilon: float | None
    final_loss: float | None
    trained_at: datetime


class ModelRecord(_Row):
    table: ClassVar[str] = "model_records"

    model_version: str
    record_id: str
    subject_id: str


class Candidate(_Row):
    table: ClassVar[str] = "candidates"

    candidate_id: str
    snapshot_id: str
    shard: int
    model_version: str
    label: int
    seed: int
    image_path: str
    created_at: datetime


class AuditRow(_Row):
    table: ClassVar[str] = "audit_results"

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


class Release(_Row):
    table: ClassVar[str] = "releases"

    version: str
    snapshot_id: str
    head_seq: int
    head_hash: str
    n_images: int
    release_path: str
    created_at: datetime


class ReleaseImage(_Row):
    table: ClassVar[str] = "release_images"

    version: str
    image_id: str
    candidate_id: str
    label: int
    shard: int
    model_version: str
    file_name: str


class Withdrawal(_Row):
    table: ClassVar[str] = "withdrawals"

    version: str
    image_id: str
    subject_id: str
    event_seq: int
    revoked_recorded_at: datetime
    withdrawn_at: datetime
    latency_s: float


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

    def add(self, *groups: Sequence[_Row]) -> None:
        """Insert rows of any catalog tables in ONE transaction."""
        with self.write() as con:
            for rows in groups:
                if rows:
                    _insert(con, type(rows[0]), rows, "")

    def select(self, model: type[_Row], tail: str = "", params: Sequence[Any] = ()) -> list[Any]:
        """Rows of `model`'s table, `tail` being a WHERE / ORDER BY clause."""
        return _select(self, model, tail, list(params))

    def snapshot_for_run(self, run_id: str | None) -> Snapshot:
        """The snapshot a run took; else the newest (a later asset re-run on its own)."""
        found = self.select(Snapshot, "WHERE run_id = ? ORDER BY taken_at DESC", [run_id])
        found = found or self.select(Snapshot, "ORDER BY taken_at DESC LIMIT 1")
        if not found:
            raise CatalogError("no consent snapshot yet: materialise consent_snapshot first")
        return found[0]

    def delete_release(self, version: str) -> None:
        """Forget a release that failed to publish (its folder never became visible)."""
        with self.write() as con:
            con.execute("DELETE FROM release_images WHERE version = ?", [version])
            con.execute("DELETE FROM releases WHERE version = ?", [version])

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
    float: pa.float64(),
    float | None: pa.float64(),
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
