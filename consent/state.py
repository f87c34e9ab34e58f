"""Consent state: what the ledger says about (subject, purpose) at a time.

State at T is decided by the last event effective at or before T (ties go to the later
recorded event). It is granted only if that event is a grant that has not expired by T.
No event at all means no consent: consentgen is opt-in by default.

A revoke is the subject's own withdrawal (dpv:ConsentWithdrawn) unless its `source` is
`OPERATOR_WITHDRAWAL_SOURCE`: then an operator revoked it on the subject's behalf
(dpv:ConsentRevoked, "by someone else"). The rule reads a field the hash chain already
covers, so the chain's encoding stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from consent.events import Action, LedgerEvent

OPERATOR_WITHDRAWAL_SOURCE = "consentgen:operator-withdrawal"
"""The `source` of a revoke an operator records on a subject's behalf
(`consentgen release withdraw --subject`)."""


class ConsentStatus(StrEnum):
    """W3C DPV consent states (https://w3id.org/dpv#) for one subject and purpose."""

    GIVEN = "ConsentGiven"
    WITHDRAWN = "ConsentWithdrawn"  # by the subject
    REVOKED = "ConsentRevoked"  # by someone else: an operator's withdrawal
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
        return event_status(deciding)
    if deciding.expires_at is not None and deciding.expires_at <= at:
        return ConsentStatus.EXPIRED
    return ConsentStatus.GIVEN


def event_status(event: LedgerEvent) -> ConsentStatus:
    """The state one event puts its record in (an expiry is a time, not an event)."""
    if event.action is Action.GRANT:
        return ConsentStatus.GIVEN
    if event.source == OPERATOR_WITHDRAWAL_SOURCE:
        return ConsentStatus.REVOKED
    return ConsentStatus.WITHDRAWN
