"""Consent state: what the ledger says about (subject, purpose) at a time.

State at T is decided by the last event effective at or before T (ties go to the later
recorded event). It is granted only if that event is a grant that has not expired by T.
No event at all means no consent: consentgen is opt-in by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from consent.events import Action, LedgerEvent


class ConsentStatus(StrEnum):
    """W3C DPV consent states (https://w3id.org/dpv#) for one subject and purpose."""

    GIVEN = "ConsentGiven"
    WITHDRAWN = "ConsentWithdrawn"
    EXPIRED = "ConsentExpired"
    UNKNOWN = "ConsentUnknown"  # no event effective yet: never asked, or a future grant

    @property
    def dpv(self) -> str:
        return f"dpv:{self.value}"


@dataclass(frozen=True)
class ConsentState:
    subject_id: str
    purpose: str
    at: datetime
    status: ConsentStatus
    deciding_event: LedgerEvent | None

    @property
    def granted(self) -> bool:
        return self.status is ConsentStatus.GIVEN


def status_of(deciding: LedgerEvent | None, at: datetime) -> ConsentStatus:
    """Classify the deciding event of a state at `at`."""
    if deciding is None:
        return ConsentStatus.UNKNOWN
    if deciding.action is Action.REVOKE:
        return ConsentStatus.WITHDRAWN
    if deciding.expires_at is not None and deciding.expires_at <= at:
        return ConsentStatus.EXPIRED
    return ConsentStatus.GIVEN
