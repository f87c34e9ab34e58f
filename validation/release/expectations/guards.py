"""Refusing identifiers before Great Expectations sees a table.

The validation pages (and GE's ``results.json``) ship publicly with each release, and
they show samples of unexpected values. So a frame with a column or index whose
name contains ``subject``, ``source``, ``record``, ``patient`` or ``path`` is refused
(``IdentifyingDataError``), and, when the caller passes its internal identifiers as
``forbidden_ids``, so is any cell equal to one of them (invariant 5). The caller drops
its lineage columns first; the catalog keeps them. The same name rule applies to the
columns a suite is configured with, so no setting can ask for an identifying column.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pandas as pd

from consentgen.errors import ConfigError, ReleaseError

IDENTIFYING_NAME_PARTS: tuple[str, ...] = ("subject", "source", "record", "patient", "path")
"""A column or index whose name contains one of these (any case) is refused."""


class IdentifyingDataError(ReleaseError):
    """A table headed for the public validation pages carries (or may carry) identifiers.

    `columns` names the offending columns; cell values are never echoed, since they are
    the very identifiers that must not leak into logs either.
    """

    def __init__(self, message: str, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        super().__init__(message)


def identifying_names(names: Sequence[object]) -> list[str]:
    """The names (as text) that contain an identifying part, in their given order."""
    found = []
    for name in names:
        text = str(name).lower()
        if any(part in text for part in IDENTIFYING_NAME_PARTS):
            found.append(str(name))
    return found


def guard_frame(
    frame: pd.DataFrame, what: str, forbidden_ids: Collection[str] | None
) -> pd.DataFrame:
    """The frame GE may see, or IdentifyingDataError.

    The index is dropped as well: GE reports the index labels of unexpected rows, and a
    caller's index may well be a source or record id.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"{what}: expected a pandas DataFrame, got {type(frame).__name__}")
    index_names = [n for n in frame.index.names if n is not None]
    bad = identifying_names([*map(str, frame.columns), *map(str, index_names)])
    if bad:
        raise IdentifyingDataError(
            f"{what}: refusing columns that may identify a source or subject: "
            f"{', '.join(sorted(bad))}; drop internal lineage columns before validating "
            "(the validation pages ship publicly)",
            bad,
        )
    if len({str(c) for c in frame.columns}) != len(frame.columns):
        raise ConfigError(f"{what}: duplicate column names")
    if forbidden_ids:
        forbidden = {str(x) for x in forbidden_ids}
        hits = []
        for name in frame.columns:
            col = frame[name]
            if col.dtype.kind in "biufcmM":  # numbers, bools, times: not string ids
                continue
            if col.map(lambda v: isinstance(v, str) and v in forbidden).any():
                hits.append(str(name))
        if hits:
            raise IdentifyingDataError(
                f"{what}: column(s) {', '.join(hits)} hold internal identifiers "
                "(values withheld)",
                hits,
            )
    return frame.reset_index(drop=True)
