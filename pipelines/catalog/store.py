"""The pipeline catalog, `<home>/catalog.duckdb`: what the pipeline knows about its data.

The catalog is separate from the consent ledger so a long pipeline run never blocks a
consent officer (DESIGN.md, "Data home"). It is written in short transactions through
`open_duckdb`, which waits for other writers with backoff and raises `CatalogError`
when the file stays locked; bulk outputs (PNGs) are written as files first and recorded
afterwards, so a row never names a file that does not exist.

The tables, their keys and the schema version are declared once, in `schema`; the
schema is ensured (created, migrated or refused) the first time this process touches a
file, not on every transaction.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from consentgen.duck import DEFAULT_MAX_WAIT_S, open_duckdb
from consentgen.errors import CatalogError
from consentgen.home import SOURCES_DIR, catalog_path, data_home
from pipelines.catalog.schema import (
    IngestRun,
    QuarantineEntry,
    Row,
    Snapshot,
    SCHEMA_VERSION,
    SourceRecord,
    arrow_schema,
    ensure_schema,
    stored_version,
)


# Catalog files whose schema this process has checked or brought to SCHEMA_VERSION: every
# later transaction on them skips the check (a file deleted meanwhile is not noticed).
_READY: set[Path] = set()


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
            first = self.path not in _READY
            con.execute("BEGIN TRANSACTION")
            try:
                if first:
                    ensure_schema(con, self.path)
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            if first:
                _READY.add(self.path)

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; a missing catalog reads as an empty one."""
        if self.path not in _READY:
            self._check_or_ensure()
        with self._open_read_only() as con:
            yield con

    def ensure_schema(self) -> None:
        """Create, migrate or refuse the file's tables (idempotent)."""
        with self.write():
            pass

    def _check_or_ensure(self) -> None:
        """A current file is checked read-only; only a missing or older one needs a writer."""
        if self.path.exists():
            with self._open_read_only() as con:
                current = stored_version(con, self.path) == SCHEMA_VERSION
            if current:
                _READY.add(self.path)
                return
        self.ensure_schema()

    def _open_read_only(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return open_duckdb(
            self.path,
            read_only=True,
            max_wait_s=self.max_wait_s,
            locked_error=CatalogError,
            what="catalog",
        )

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

    def add(self, *groups: Sequence[Row]) -> None:
        """Insert rows of any catalog tables in ONE transaction."""
        with self.write() as con:
            for rows in groups:
                if rows:
                    _insert(con, type(rows[0]), rows, "")

    def select(self, model: type[Row], tail: str = "", params: Sequence[Any] = ()) -> list[Any]:
        """Rows of `model`'s table, `tail` being a WHERE / ORDER BY clause."""
        return _select(self, model, tail, list(params))

    def snapshot_for_run(self, run_id: str) -> Snapshot:
        """The snapshot `run_id` took. Never "the newest": a step that ran without its own
        snapshot would honour consent as someone else's build read it."""
        found = self.select(Snapshot, "WHERE run_id = ? ORDER BY taken_at DESC", [run_id])
        if not found:
            raise CatalogError(
                f"run {run_id} took no consent snapshot: run consent_snapshot in the same run, "
                "or name the build's snapshot with the run tag consentgen/snapshot_id")
        return found[0]

    def snapshot(self, snapshot_id: str) -> Snapshot:
        """A snapshot by id (what a publish re-run names explicitly)."""
        found = self.select(Snapshot, "WHERE snapshot_id = ?", [snapshot_id])
        if not found:
            raise CatalogError(f"no consent snapshot {snapshot_id!r} in {self.path}")
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

    def source_keys(self) -> dict[str, tuple[str, str, str | None, str]]:
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
    con: duckdb.DuckDBPyConnection, model: type[Row], rows: Sequence[Row], tail: str
) -> None:
    """Bulk insert through an Arrow table: one statement however many rows."""
    if not rows:
        return
    batch = pa.Table.from_pylist([r.model_dump() for r in rows], schema=arrow_schema(model))
    names = ", ".join(model.columns())
    con.register("b", batch)
    # Not unregistered on failure: an aborted transaction refuses even that, and `write`
    # rolls back and closes the connection, which drops the view anyway.
    try:
        con.execute(f"INSERT INTO {model.table} ({names}) SELECT {names} FROM b {tail}")
    except duckdb.ConstraintException as exc:
        raise _refused(model, exc) from exc
    con.unregister("b")


_DUPLICATE = re.compile(r'duplicate key "([^"]*)"', re.IGNORECASE)


def _refused(model: type[Row], exc: duckdb.ConstraintException) -> CatalogError:
    """One line naming the table and its key, instead of DuckDB's text: a second row for
    the same key is a caller's bug or a step re-run on rows it already wrote."""
    found = _DUPLICATE.search(str(exc))
    if found is None or not model.primary_key:
        return CatalogError(f"catalog table {model.table} refused a row: {str(exc).splitlines()[0]}")
    return CatalogError(
        f"catalog table {model.table} refused a duplicate key ({', '.join(model.primary_key)}) "
        f"= {found.group(1)}; nothing from this write was recorded"
    )


def _select(catalog: Catalog, model: type[Row], tail: str, params: list[Any]) -> list[Any]:
    columns = model.columns()
    with catalog.read() as con:
        rows = con.execute(
            f"SELECT {', '.join(columns)} FROM {model.table} {tail}", params
        ).fetchall()
    return [model(**dict(zip(columns, row, strict=True))) for row in rows]
