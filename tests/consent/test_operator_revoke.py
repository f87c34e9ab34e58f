"""An operator's revoke on a subject's behalf is dpv:ConsentRevoked; the subject's own is
dpv:ConsentWithdrawn. The rule reads `source`, so the hash chain is the same as ever."""

from __future__ import annotations

from consent import ConsentStatus, Ledger, iso27560_records
from consent.canonical import canonical_bytes, chain_hash
from consent.state import OPERATOR_WITHDRAWAL_SOURCE
from tests.consent.conftest import PURPOSE, day


def test_an_operator_revoke_is_consent_revoked(ledger: Ledger) -> None:
    for subject in ("own", "operator"):
        ledger.grant(subject, PURPOSE, effective_at=day(0))
    ledger.revoke("own", PURPOSE, effective_at=day(1), source="form-v2")
    by_operator = ledger.revoke("operator", PURPOSE, effective_at=day(1), actor="dpo-1",
                                source=OPERATOR_WITHDRAWAL_SOURCE)

    assert ledger.state("own", PURPOSE, day(2)).status is ConsentStatus.WITHDRAWN
    state = ledger.state("operator", PURPOSE, day(2))
    assert state.status is ConsentStatus.REVOKED and not state.granted
    assert ledger.eligible(PURPOSE, day(2)) == []
    assert {s.subject_id: s.status for s in ledger.states(PURPOSE, day(2))} == {
        "own": ConsentStatus.WITHDRAWN, "operator": ConsentStatus.REVOKED}

    records = {r["pii_principal_id"]: r for r in iso27560_records(ledger, at=day(2))}
    assert records["own"]["consent_status"] == "dpv:ConsentWithdrawn"
    assert records["operator"]["consent_status"] == "dpv:ConsentRevoked"
    assert [e["consent_status"] for e in records["operator"]["events"]] == [
        "dpv:ConsentGiven", "dpv:ConsentRevoked"]
    assert [e["consent_status"] for e in records["own"]["events"]] == [
        "dpv:ConsentGiven", "dpv:ConsentWithdrawn"]

    # the chain encodes the event as before: its hash is recomputed from the same fields
    encoding = canonical_bytes(by_operator.hashed_fields())
    assert chain_hash(by_operator.prev_hash, encoding) == by_operator.hash
    assert ledger.verify().seq == 4
