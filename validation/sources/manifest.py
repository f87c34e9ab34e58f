"""The ingest manifest: a CSV that says whose each file is.

A manifest is written by people (or exported by a PACS query), so it is checked whole
before a single file is ingested: every bad line is collected and reported with its line
number, and nothing is ingested from a manifest with any bad line (a half-ingested folder
under a wrong subject mapping would be worse than none).

Columns (header required, names case-insensitive, order free):

    path        required; the file, relative to the ingested folder (or absolute)
    subject_id  required; whose image it is: consent is looked up by this id
    label       optional; the record's class: a name (circle, no_tumour: any text that
                can name a folder) or an integer, held as its decimal text ("01" is "1")
    record_id   optional; a stable id for the record, else derived from subject + pixels
    simulated   optional; true/false, marks demo data whose subjects are not real people
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from consentgen.errors import ConfigError
from consentgen.labels import canonical_label

REQUIRED_COLUMNS = ("path", "subject_id")
OPTIONAL_COLUMNS = ("label", "record_id", "simulated")
MAX_ID_LENGTH = 256
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n", ""}


class ManifestRow(BaseModel):
    """One checked manifest line."""

    model_config = ConfigDict(frozen=True)

    line: int
    path: str
    subject_id: str
    label: str | None = None
    record_id: str | None = None
    simulated: bool = False


class _Problems:
    def __init__(self, source: Path) -> None:
        self.source = source
        self.items: list[tuple[int, str]] = []

    def add(self, line: int, why: str) -> None:
        self.items.append((line, why))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = "; ".join(f"line {n}: {why}" for n, why in self.items[:5])
        more = f" (and {len(self.items) - 5} more)" if len(self.items) > 5 else ""
        raise ConfigError(
            f"manifest {self.source}: {len(self.items)} bad line(s), nothing ingested: "
            f"{shown}{more}"
        )


def read_manifest(source: str | os.PathLike[str]) -> list[ManifestRow]:
    """All rows of the manifest at `source`, or ConfigError naming every bad line."""
    source = Path(source)
    try:
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"manifest {source}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(f"manifest {source}: cannot read: {exc.strerror or exc}") from exc
    problems = _Problems(source)
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ConfigError(
                f"manifest {source} line 1: empty; expected a header with "
                f"{', '.join(REQUIRED_COLUMNS)}"
            )
        columns = _columns(header, source)
        rows = [
            row
            for fields in reader
            if any(f.strip() for f in fields)
            and (row := _row(fields, columns, reader.line_num, problems)) is not None
        ]
    except csv.Error as exc:
        raise ConfigError(
            f"manifest {source} line {reader.line_num}: not valid CSV: {exc}"
        ) from exc
    _unique(rows, "path", problems, key=lambda r: os.path.normpath(r.path))
    _unique(rows, "record_id", problems, key=lambda r: r.record_id)
    if not rows and not problems.items:
        problems.add(2, "no data rows under the header")
    problems.raise_if_any()
    return rows


def _columns(header: list[str], source: Path) -> list[str]:
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    unknown = [n for n in names if n not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    repeated = sorted({n for n in names if names.count(n) > 1})
    why = []
    if missing:
        why.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        why.append(f"unknown column(s) {', '.join(repr(u) for u in unknown)}")
    if repeated:
        why.append(f"repeated column(s) {', '.join(repeated)}")
    if why:
        allowed = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        raise ConfigError(f"manifest {source} line 1: {'; '.join(why)} (columns: {allowed})")
    return names


def _row(
    fields: list[str], columns: list[str], line: int, problems: _Problems
) -> ManifestRow | None:
    if len(fields) != len(columns):
        problems.add(line, f"expected {len(columns)} fields, found {len(fields)}")
        return None
    values = {c: f.strip() for c, f in zip(columns, fields, strict=True)}
    before = len(problems.items)
    path = values["path"]
    if not path:
        problems.add(line, "empty path")
    subject = _identifier(values["subject_id"], "subject_id", line, problems, required=True)
    record_id = _identifier(
        values.get("record_id", ""), "record_id", line, problems, required=False
    )
    label = _label(values.get("label", ""), line, problems)
    flag = values.get("simulated", "").lower()
    if flag not in _TRUE | _FALSE:
        problems.add(line, f"simulated must be true or false, not {values['simulated']!r}")
    if len(problems.items) > before:
        return None
    return ManifestRow(
        line=line,
        path=path,
        subject_id=subject or "",
        label=label,
        record_id=record_id,
        simulated=flag in _TRUE,
    )


def _identifier(
    value: str, name: str, line: int, problems: _Problems, *, required: bool
) -> str | None:
    if not value:
        if required:
            problems.add(line, f"empty {name}")
        return None
    if len(value) > MAX_ID_LENGTH:
        problems.add(line, f"{name} longer than {MAX_ID_LENGTH} characters")
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        problems.add(line, f"{name} contains control characters")
    return value


def _label(value: str, line: int, problems: _Problems) -> str | None:
    if not value:
        return None
    try:
        return canonical_label(value)
    except ValueError as exc:
        problems.add(line, f"label: {exc}")
        return None


def _unique(
    rows: list[ManifestRow],
    what: str,
    problems: _Problems,
    *,
    key: Callable[[ManifestRow], str | None],
) -> None:
    first: dict[str, int] = {}
    for row in rows:
        value = key(row)
        if value is None:
            continue
        if value in first:
            problems.add(row.line, f"{what} {value!r} repeats line {first[value]}")
        else:
            first[value] = row.line
    problems.items.sort()
