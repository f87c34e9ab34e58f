"""Why a source record was left out of a build: the one list, used by eligibility, card and docs."""

from __future__ import annotations

from enum import StrEnum

from consent.state import ConsentStatus


class ExclusionReason(StrEnum):
    """The `exclusions.reason` of a record; the consent ones are W3C DPV state names."""

    WITHDRAWN = ConsentStatus.WITHDRAWN.value
    """The deciding event is the subject's own revoke."""
    REVOKED = ConsentStatus.REVOKED.value
    """The deciding event is an operator's revoke on the subject's behalf."""
    EXPIRED = ConsentStatus.EXPIRED.value
    """The deciding grant has expired."""
    NOT_YET = ConsentStatus.UNKNOWN.value
    """The subject has ledger events, but none in effect yet (e.g. a future-dated grant)."""
    NO_RECORD = "NoConsentRecord"
    """The ledger has no event for the subject and purpose: opt-in means no."""
    UNKNOWN_LABEL = "UnknownLabel"
    """Consent holds, but the record has no label and the build is class-conditional."""
    NOT_IN_CLASSES = "LabelNotInClasses"
    """Consent holds, but the record's label is not in the build file's `labels.classes`."""
    SMALL_CLASS = "SmallClass"
    """Consent holds, but the record's class has fewer eligible subjects than
    `labels.min_subjects_per_class`: a class folder backed by so few people would point at
    them, so the class is not trained and its name is not published."""

    @classmethod
    def for_status(cls, status: ConsentStatus | None) -> ExclusionReason:
        """The reason a subject in `status` (None: no event at all) is not eligible."""
        if status is None:
            return cls.NO_RECORD
        if status is ConsentStatus.GIVEN:
            raise ValueError("a granted subject is not excluded for consent")
        return cls(status.value)


class WithdrawalReason(StrEnum):
    """Why an image was taken down (`withdrawals.reason`); the card shows the class only."""

    WITHDRAWN = ConsentStatus.WITHDRAWN.value
    """The subject revoked their consent."""
    REVOKED = "ConsentRevoked"
    """An operator revoked it on the subject's behalf (`release withdraw --subject`)."""
    EXPIRED = ConsentStatus.EXPIRED.value
    """The grant expired (and the expiry policy withdraws)."""
    NOT_YET = ConsentStatus.UNKNOWN.value
    """A back-dated change left no consent in effect at all."""
    NO_RECORD = "NoConsentRecord"
    """The ledger holds no event for the subject any more for this purpose."""
    IMAGE = "ImageWithdrawn"
    """This one image was taken down (e.g. a look-alike complaint); its pixels are banned."""
