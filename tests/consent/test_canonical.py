"""The canonical encoding and hash chain: fixed vectors, refusals, and the SQL twin."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.events import EARLIEST, LATEST, ConsentEvent
from consent.canonical import (
    CANONICAL_SQL,
    DOMAIN_PREFIX,
    GENESIS_HASH,
    HASH_SQL,
    canonical_bytes,
    chain_hash,
)

E1 = {
    "seq": 1,
    "event_id": "evt-0001",
    "subject_id": "patient-042",
    "purpose": "synthetic-training",
    "action": "grant",
    "effective_at": datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
    "expires_at": datetime(2027, 1, 15, 9, 30, tzinfo=UTC),
    "recorded_at": datetime(2026, 1, 15, 9, 31, 2, 123456, tzinfo=UTC),
    "actor": "officer-7",
    "source": "form-v3",
}
E2 = {**E1, "seq": 2, "event_id": "evt-0002", "action": "revoke", "expires_at": None,
      "effective_at": datetime(2026, 3, 1, tzinfo=UTC), "recorded_at": datetime(2026, 3, 2, tzinfo=UTC),
      "source": ""}
E3 = {**E1, "seq": 3, "event_id": "evt-0003", "subject_id": 'Zoë "Q" \\ 患者', "expires_at": None}

# Fixed vectors. Reproduce them with the standard library alone:
#   enc = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
#   hashlib.sha256(b"consentgen-ledger-v1|" + prev_hash.encode() + enc).hexdigest()
# where doc holds the event's fields with times as "%Y-%m-%dT%H:%M:%S.%fZ" strings and
# prev_hash starts at GENESIS = sha256(b"consentgen-ledger-v1|genesis").
GENESIS = "4eda2317bab17105edc81ffdb89879f4953458565a9b1f51a17e385a67bf3922"
E1_BYTES = (
    '{"action":"grant","actor":"officer-7","effective_at":"2026-01-15T09:30:00.000000Z",'
    '"event_id":"evt-0001","expires_at":"2027-01-15T09:30:00.000000Z","purpose":"synthetic-training",'
    '"recorded_at":"2026-01-15T09:31:02.123456Z","seq":1,"source":"form-v3","subject_id":"patient-042"}'
)
H1 = "3fa90909635c265cc932e6001e5b57b5d5c2b15471d85a21a3c8ebd0c439b829"
H2 = "70d71b0af99245db0a6a90caff68067e53c9dc60c8ab34b8ad150f37d6d511d8"
H3 = "7435bc8270a5f36d3b7d052dcd015539f982878355c04cb276aa6d3bd107a68d"


def test_fixed_vectors() -> None:
    assert GENESIS_HASH == GENESIS
    assert canonical_bytes(E1).decode() == E1_BYTES
    h1 = chain_hash(GENESIS_HASH, canonical_bytes(E1))
    h2 = chain_hash(h1, canonical_bytes(E2))
    h3 = chain_hash(h2, canonical_bytes(E3))
    assert (h1, h2, h3) == (H1, H2, H3)


def test_vectors_reproduce_with_the_standard_library_alone() -> None:
    assert hashlib.sha256(b"consentgen-ledger-v1|genesis").hexdigest() == GENESIS
    doc = {k: (v.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if isinstance(v, datetime) else v)
           for k, v in E1.items()}
    enc = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(b"consentgen-ledger-v1|" + GENESIS.encode() + enc).hexdigest() == H1


def test_other_offsets_encode_as_the_same_utc_instant() -> None:
    shifted = {**E1, "effective_at": E1["effective_at"].astimezone(timezone(timedelta(hours=5)))}
    assert canonical_bytes(shifted) == canonical_bytes(E1)


@pytest.mark.parametrize(
    ("key", "value"),
    [("seq", 1.0), ("seq", True), ("effective_at", datetime(2026, 1, 1)), ("actor", b"x")],
)
def test_non_canonical_values_are_refused(key: str, value: object) -> None:
    with pytest.raises(TypeError, match=key):
        canonical_bytes({**E1, key: value})


def test_missing_field_is_refused() -> None:
    partial = dict(E1)
    del partial["source"]
    with pytest.raises(KeyError, match="source"):
        canonical_bytes(partial)


def test_domain_prefix_separates_from_plain_sha256() -> None:
    enc = canonical_bytes(E1)
    assert chain_hash(GENESIS_HASH, enc) != hashlib.sha256(GENESIS_HASH.encode() + enc).hexdigest()
    assert DOMAIN_PREFIX.endswith(b"|")


# Text the event boundary lets through: no control characters, no surrogates.
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=0, max_size=24
)
# Every time the ledger accepts (`consent.events.EARLIEST`..`LATEST`, UTC), edges included.
instants = st.one_of(
    st.datetimes(min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None),
                 timezones=st.just(UTC)),
    st.sampled_from([EARLIEST, LATEST, datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]),
)


@settings(max_examples=60, deadline=None)
@given(
    seq=st.integers(min_value=1, max_value=2**53),
    strings=st.lists(text, min_size=5, max_size=5),
    times=st.lists(instants, min_size=3, max_size=3),
    has_expiry=st.booleans(),
    prev=st.sampled_from([GENESIS_HASH, H1]),
)
def test_sql_twin_encodes_and_hashes_byte_for_byte(seq, strings, times, has_expiry, prev) -> None:
    fields = dict(zip(("event_id", "subject_id", "purpose", "actor", "source"), strings, strict=True))
    fields.update(seq=seq, action="revoke", effective_at=times[0],
                  expires_at=times[1] if has_expiry else None, recorded_at=times[2])
    assert sql_twin(fields, prev) == (canonical_bytes(fields), chain_hash(prev, canonical_bytes(fields)))


def sql_twin(fields: dict, prev: str) -> tuple[bytes, str]:
    """The SQL twin's encoding and hash of one event, through a real DuckDB table."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE events (seq BIGINT, event_id VARCHAR, subject_id VARCHAR, purpose VARCHAR, "
        "action VARCHAR, effective_at TIMESTAMP, expires_at TIMESTAMP, recorded_at TIMESTAMP, "
        "actor VARCHAR, source VARCHAR, prev_hash VARCHAR)"
    )
    naive = {k: (v.replace(tzinfo=None) if isinstance(v, datetime) else v) for k, v in fields.items()}
    con.execute(
        "INSERT INTO events VALUES ($seq, $event_id, $subject_id, $purpose, $action, $effective_at, "
        "$expires_at, $recorded_at, $actor, $source, $prev)", {**naive, "prev": prev},
    )
    encoded, hashed = con.execute(f"SELECT {CANONICAL_SQL}, {HASH_SQL} FROM events").fetchall()[0]
    return encoded.encode(), hashed


@settings(max_examples=60, deadline=None)
@given(when=instants)
def test_every_accepted_time_is_accepted_at_the_boundary(when: datetime) -> None:
    event = ConsentEvent(subject_id="s", purpose="p", action="grant", effective_at=when.isoformat())
    assert event.effective_at == when


@pytest.mark.parametrize("year", [1, 999, 1000, 9999])
def test_the_twins_agree_on_four_digit_years_even_outside_the_accepted_range(year: int) -> None:
    """Years the boundary refuses still encode alike: Python pads them as DuckDB does."""
    fields = {**E1, "effective_at": datetime(year, 6, 1, tzinfo=UTC)}
    assert f'"effective_at":"{year:04d}-06-01T00:00:00.000000Z"' in canonical_bytes(fields).decode()
    assert sql_twin(fields, GENESIS_HASH) == (canonical_bytes(fields),
                                              chain_hash(GENESIS_HASH, canonical_bytes(fields)))


@pytest.mark.parametrize(
    ("field", "value"),
    [("effective_at", "0999-06-01T00:00:00Z"), ("effective_at", "0001-01-01T00:00:00Z"),
     ("effective_at", "1899-12-31T23:59:59.999999Z"), ("effective_at", "3000-01-01T00:00:00Z"),
     ("effective_at", "1900-01-01T00:30:00+01:00"), ("effective_at", "9999-12-31T23:59:59-01:00"),
     ("expires_at", "9999-12-31T23:59:59+00:00"), ("expires_at", datetime(3000, 1, 1, tzinfo=UTC))],
)
def test_times_outside_1900_to_2999_are_refused_naming_the_field(field: str, value: object) -> None:
    from consentgen.errors import InvalidEventError

    with pytest.raises(InvalidEventError, match=rf"^{field}: .*outside the ledger's range 1900-01-01\.\.2999-12-31"):
        ConsentEvent.parse({"subject_id": "s", "purpose": "p", "action": "grant",
                            "effective_at": "2026-01-01T00:00:00Z", field: value})
