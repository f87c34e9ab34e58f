"""Consent state: what the ledger says about (subject, purpose) at a time.

State at T is decided by the last event effective at or before T (ties go to the later
recorded event). It is granted only if that event is a grant that has not expired by T.
No event at all means no consent: consentgen is opt-in by default.

A revoke is the subject's own withdrawal (dpv:ConsentWithdrawn) unless its `source` is
`OPERATOR_WITHDRAWAL_SOURCE`: then an operator revoked it on the subject's behalf
(dpv:ConsentRevoked, "by someone else"); if it is `EXPIRY_SOURCE`, the consent ran out
at the revoke's effective time (dpv:ConsentExpired): how an expiry another system reports
as an event (an ISO/IEC TS 27560 history entry) is recorded. The rule reads a field the
hash chain already covers, so the chain's encoding stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from consent.events import Action, LedgerEvent

OPERATOR_WITHDRAWAL_SOURCE = "consentgen:operator-withdrawal"
"""The `source` of a revoke an operator records on a subject's behalf
(`consentgen release withdraw --subject`)."""
EXPIRY_SOURCE = "consentgen:expired"
"""The `source` of a revoke that records an expiry reported as an event (an ISO/IEC TS
27560 history entry dpv:ConsentExpired at T): consent ended at T by expiry, withdrawn by
nobody. Our own expiries stay a grant's `expires_at` (a time, not an event); this is for
histories that state them, so that their export says ConsentExpired again."""


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
    """The state one event puts its record in (a grant's expiry is a time, not an event;
    an expiry recorded as an event is a revoke with `EXPIRY_SOURCE`)."""
    if event.action is Action.GRANT:
        return ConsentStatus.GIVEN
    if event.source == OPERATOR_WITHDRAWAL_SOURCE:
        return ConsentStatus.REVOKED
    if event.source == EXPIRY_SOURCE:
        return ConsentStatus.EXPIRED
    return ConsentStatus.WITHDRAWN


def consent_ended_at(deciding: LedgerEvent) -> datetime | None:
    """When the consent that `deciding` ends stopped holding: a revoke's effective time (a
    recorded expiry's too), a grant's expiry (None while it has none). What a reader of an
    EXPIRED state must use: its deciding event may be a grant with `expires_at` or a
    revoke with `EXPIRY_SOURCE`, whose `expires_at` is always None."""
    if deciding.action is Action.REVOKE:
        return deciding.effective_at
    return deciding.expires_at
