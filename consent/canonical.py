"""The ledger's canonical encoding and hash chain — their one owner.

Encoding: JSON with sorted keys, compact separators, UTF-8 (no ASCII escaping), values
restricted to strings, ints, None and UTC datetimes written as
`YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds always). Floats, bools and naive datetimes are
refused, because their text forms are not stable across languages and libraries.

Hash: SHA-256 over `DOMAIN_PREFIX ‖ previous hash (hex) ‖ encoding`, starting from
`GENESIS_HASH`. Reproduce any hash with nothing but the standard library:

    enc = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    hashlib.sha256(b"consentgen-ledger-v1|" + prev.encode() + enc.encode()).hexdigest()

`verify()` checks a whole ledger inside DuckDB, vectorised, with `CANONICAL_SQL` — the same
encoding written as a SQL expression (strings never hold control characters, which
`consent.events` refuses, so DuckDB's `to_json` and Python's `json.dumps` agree byte for
byte). A property test pins the two to each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

DOMAIN_PREFIX = b"consentgen-ledger-v1|"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

HASHED_FIELDS = (
    "action",
    "actor",
    "effective_at",
    "event_id",
    "expires_at",
    "purpose",
    "recorded_at",
    "seq",
    "source",
    "subject_id",
)


_last_time: tuple[Any, str] = (None, "")


def _canonical_value(key: str, value: Any) -> str | int | None:
    kind = type(value)
    if value is None or kind is str or kind is int:  # most fields: no further checks
        return value
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"{key}: {type(value).__name__} values are not canonical")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError(f"{key}: naive datetime is not canonical")
        # isoformat, not strftime: C's %Y drops the leading zeros of years before 1000
        # ("999-06-01") while DuckDB's keeps them ("0999-06-01"); the ledger refuses such
        # years anyway (`consent.events.EARLIEST`), this keeps the twins equal regardless.
        global _last_time
        last = _last_time
        if last[0] is value:  # a group's rows share one recorded time: format it once
            return last[1]
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        _last_time = (value, text)
        return text
    if hasattr(value, "value") and isinstance(value.value, str):  # str enums
        return value.value
    raise TypeError(f"{key}: {type(value).__name__} values are not canonical")


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """The canonical encoding of one event's hashed fields."""
    try:
        doc = {key: _canonical_value(key, fields[key]) for key in HASHED_FIELDS}
    except KeyError:
        missing = set(HASHED_FIELDS) - set(fields)
        raise KeyError(f"canonical encoding needs {sorted(missing)}") from None
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, encoding: bytes, domain: bytes = DOMAIN_PREFIX) -> str:
    """The hash of an entry whose canonical encoding is `encoding`, chained to `prev_hash`.

    `domain` names the chain (the ledger's by default), so an entry of one chain can
    never pass for an entry of another that happens to share its encoding.
    """
    return hashlib.sha256(domain + prev_hash.encode("ascii") + encoding).hexdigest()


def genesis_hash(domain: bytes) -> str:
    """The `prev_hash` of a chain's first entry (`GENESIS_HASH` for the ledger's)."""
    return hashlib.sha256(domain + b"genesis").hexdigest()


def canonical_document(doc: Mapping[str, Any]) -> bytes:
    """The same canonical JSON for another chain's entries (the service's access log):
    strings, ints, None, UTC datetimes as above, and lists of strings."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, list | tuple):
            if not all(isinstance(v, str) for v in value):
                raise TypeError(f"{key}: only lists of strings are canonical")
            out[key] = list(value)
        else:
            out[key] = _canonical_value(key, value)
    return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


GENESIS_HASH = genesis_hash(DOMAIN_PREFIX)


def _sql_time(column: str) -> str:
    return f"strftime({column}, '{TIME_FORMAT}')"


# The same encoding over the `events` table's columns (timestamps stored as UTC TIMESTAMP),
# as one `format` template with keys in sorted order; see the module docstring for why
# this twin exists.
CANONICAL_SQL = (
    "format('{{\"action\":{},\"actor\":{},\"effective_at\":\"{}\",\"event_id\":{},"
    "\"expires_at\":{},\"purpose\":{},\"recorded_at\":\"{}\",\"seq\":{},\"source\":{},"
    "\"subject_id\":{}}}', "
    f"to_json(action), to_json(actor), {_sql_time('effective_at')}, to_json(event_id), "
    f"CASE WHEN expires_at IS NULL THEN 'null' ELSE '\"' || {_sql_time('expires_at')} || '\"' END, "
    f"to_json(purpose), {_sql_time('recorded_at')}, seq, to_json(source), to_json(subject_id))"
)

HASH_SQL = f"sha256('{DOMAIN_PREFIX.decode()}' || prev_hash || {CANONICAL_SQL})"
