"""Consent events at the ledger's boundary.

`ConsentEvent` is what a caller asks to append (a grant or a revoke); `LedgerEvent` is
what the ledger stored, with its sequence number, recorded time and hash-chain links.
Validation happens here, once, so that nothing malformed ever reaches the chain.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from consentgen.errors import InvalidEventError

MAX_TEXT = 256
PURPOSE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,127}$")
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""The times the ledger accepts (UTC, inclusive). A consent fact from before 1900 or after
2999 is a typo, and the canonical encoding is only pinned to its SQL twin over this range
(four-digit years: `999-06-01` in one and `0999-06-01` in the other once wedged a ledger)."""
_RANGE = "1900-01-01..2999-12-31 (UTC)"
# Bidirectional controls: embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069)
# and the marks (U+200E, U+200F, U+061C). All are format characters (Cf) as well; listed
# so the refusal can say what it found.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


class Action(StrEnum):
    GRANT = "grant"
    REVOKE = "revoke"


def to_utc(value: datetime, field: str) -> datetime:
    """Normalise an aware datetime to UTC; naive datetimes are refused, never guessed."""
    if not isinstance(value, datetime):
        raise ValueError(f"{field} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} is a naive datetime (no time zone); add Z or +00:00")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past datetime.max in UTC
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError(f"{field} {value.isoformat()} is outside the ledger's range {_RANGE}")
    return utc


def utc_now() -> datetime:
    return datetime.now(UTC)


def _check_text(value: str, field: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string")
    if not value and not allow_empty:
        raise ValueError(f"{field} is empty")
    if value != value.strip():
        raise ValueError(f"{field} has leading or trailing whitespace: {value!r}")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{field} is longer than {MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise ValueError(f"{field} contains control characters: {value!r}")
    return value


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Exactly Unicode's Cc (controls) and Cs (surrogates): one regex scan instead of a
category lookup per character (a tenth of the cost, on every text field of every event)."""
_PLAIN_ASCII = re.compile("[\x20-\x7e]*")


def subject_key(value: str) -> str:
    """The form a subject id is stored and looked up in (NFC). Readers use this alone: a
    lookup of an id no writer would accept today finds what an older ledger holds for it,
    and nothing otherwise, instead of failing a reconcile or a build."""
    return unicodedata.normalize("NFC", value)


def normalise_subject_id(value: str, field: str = "subject_id") -> str:
    """A subject id as the ledger keys it: NFC-normalised, never invisible or spoofed.

    Every writer (grant, revoke, import, the API) goes through here, and every reader
    (status, the log) through the same `subject_key`, so "josé" typed as e + U+0301 (NFD) and as U+00E9 (NFC) are one subject,
    and an id that renders as another (a U+202E prefix, a zero-width space, a byte-order
    mark) is refused rather than recorded as a subject nobody can find again.
    """
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string")
    if _PLAIN_ASCII.fullmatch(value):  # the common case: NFC and no format character apply
        if not value.strip():
            raise ValueError(f"{field} is empty")
        return _check_text(value, field)
    value = subject_key(value)
    if not value.strip():
        raise ValueError(f"{field} is empty")
    for ch in value:
        kind = unicodedata.category(ch)
        if ch in BIDI_CONTROLS or kind in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            what = ("a bidirectional control" if ch in BIDI_CONTROLS else
                    {"Cc": "a control character", "Cf": "an invisible format character",
                     "Cs": "a lone surrogate"}.get(kind, "a line separator"))
            raise ValueError(f"{field} contains {what} (U+{ord(ch):04X}); ids must be visible text")
    return _check_text(value, field)


def parse_utc(value: Any, field: str) -> datetime:
    """An ISO-8601 string (Z or an offset) or an aware datetime, as UTC; ValueError otherwise."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{field} is not an ISO-8601 time: {value!r}") from exc
    return to_utc(value, field)


class ConsentEvent(BaseModel):
    """A grant or revoke as submitted by a consent officer, an import or an API client.

    `effective_at` may be left out (it then means "now", and an idempotent retry with the
    same `event_id` matches the stored event whatever its effective time).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: Annotated[str, Field(default_factory=lambda: str(uuid.uuid4()))]
    subject_id: str
    purpose: str
    action: Action
    effective_at: datetime | None = None
    expires_at: datetime | None = None
    actor: str = "unknown"
    source: str = ""

    @field_validator("event_id", "actor")
    @classmethod
    def _text(cls, value: str, info) -> str:
        return _check_text(value, info.field_name)

    @field_validator("subject_id")
    @classmethod
    def _subject(cls, value: str) -> str:
        return normalise_subject_id(value)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return _check_text(value, "source", allow_empty=True)

    @field_validator("purpose")
    @classmethod
    def _purpose(cls, value: str) -> str:
        _check_text(value, "purpose")
        if not PURPOSE_PATTERN.match(value):
            raise ValueError(
                f"purpose {value!r} must be lower-case letters, digits and . _ : - "
                "(e.g. synthetic-training)"
            )
        return value

    @field_validator("effective_at", "expires_at", mode="before")
    @classmethod
    def _times(cls, value: Any, info) -> datetime | None:
        if value is None or value == "":
            return None
        return parse_utc(value, info.field_name)

    @model_validator(mode="after")
    def _expiry(self) -> ConsentEvent:
        if self.expires_at is not None:
            if self.action is Action.REVOKE:
                raise ValueError("a revoke cannot carry an expiry")
            if self.effective_at is not None and self.expires_at <= self.effective_at:
                raise ValueError("expires_at must be after effective_at")
        return self

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ConsentEvent:
        """Build from untrusted data, turning pydantic's report into one clear line."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidEventError(describe_validation_error(exc)) from None

    def matches(self, stored: LedgerEvent) -> bool:
        """Same content as an already stored event (the idempotency test)."""
        return (
            self.subject_id == stored.subject_id
            and self.purpose == stored.purpose
            and self.action == stored.action
            and (self.effective_at is None or self.effective_at == stored.effective_at)
            and self.expires_at == stored.expires_at
            and self.actor == stored.actor
            and self.source == stored.source
        )


class LedgerEvent(BaseModel):
    """An event as the ledger holds it: immutable, chained by `prev_hash` and `hash`."""

    model_config = ConfigDict(frozen=True)

    seq: int
    event_id: str
    subject_id: str
    purpose: str
    action: Action
    effective_at: datetime
    expires_at: datetime | None
    recorded_at: datetime
    actor: str
    source: str
    prev_hash: str
    hash: str

    def hashed_fields(self) -> dict[str, Any]:
        """The fields the hash covers (everything except the two hashes themselves)."""
        return self.model_dump(exclude={"prev_hash", "hash"}, mode="python")

    def public_dict(self) -> dict[str, Any]:
        """JSON-ready form for exports and the CLI (times as UTC ISO-8601)."""
        return self.model_dump(mode="json")


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "event"
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
