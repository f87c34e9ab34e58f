"""`state` and `eligible` agree with a plain-Python fold of the events, for random histories."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent import ConsentEvent, ConsentStatus, Ledger, LedgerEvent
from tests.consent.conftest import T0

SUBJECTS = ["s1", "s2", "s3"]
PURPOSES = ["synthetic-training", "model-evaluation"]


def fold(events: list[LedgerEvent], subject: str, purpose: str, at: datetime) -> ConsentStatus:
    """The reference: the last event effective at or before `at` decides (ties: later seq)."""
    deciding = None
    for event in events:  # in seq order
        if event.subject_id != subject or event.purpose != purpose or event.effective_at > at:
            continue
        if deciding is None or event.effective_at >= deciding.effective_at:
            deciding = event
    if deciding is None:
        return ConsentStatus.UNKNOWN
    if deciding.action == "revoke":
        return ConsentStatus.WITHDRAWN
    if deciding.expires_at is not None and deciding.expires_at <= at:
        return ConsentStatus.EXPIRED
    return ConsentStatus.GIVEN


event_spec = st.tuples(
    st.sampled_from(SUBJECTS),
    st.sampled_from(PURPOSES),
    st.sampled_from(["grant", "revoke"]),
    st.integers(min_value=0, max_value=20),          # effective day: back- and future-dated
    st.one_of(st.none(), st.integers(min_value=1, max_value=10)),  # expiry after, in days
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.lists(event_spec, min_size=1, max_size=6), min_size=1, max_size=4),
    probe_days=st.lists(st.integers(min_value=-1, max_value=32), min_size=1, max_size=3),
)
def test_state_and_eligible_match_the_fold(tmp_path_factory, batches, probe_days) -> None:
    ledger = Ledger(tmp_path_factory.mktemp("ledger") / "consent.duckdb")
    heads = []
    for batch in batches:
        events = [
            ConsentEvent(
                subject_id=subject, purpose=purpose, action=action,
                effective_at=T0 + timedelta(days=eff),
                expires_at=(T0 + timedelta(days=eff + exp)) if exp and action == "grant" else None,
            )
            for subject, purpose, action, eff, exp in batch
        ]
        heads.append(ledger.append_many(events).head.seq)
    stored = ledger.events()
    for probe in probe_days:
        at = T0 + timedelta(days=probe, hours=12 if probe % 2 else 0)
        for as_of in sorted({None, heads[0]}, key=lambda h: h or 0):  # now, and after batch 1
            visible = [e for e in stored if as_of is None or e.seq <= as_of]
            for purpose in PURPOSES:
                expected = {s for s in SUBJECTS if fold(visible, s, purpose, at) is ConsentStatus.GIVEN}
                assert set(ledger.eligible(purpose, at, as_of_seq=as_of)) == expected
                for subject in SUBJECTS:
                    state = ledger.state(subject, purpose, at, as_of_seq=as_of)
                    assert state.status is fold(visible, subject, purpose, at)
    assert ledger.verify().seq == len(stored)
