"""The built-in demo: Br35H brain-MRI slices with simulated subjects and simulated consent.

Br35H ships no subject ids and no documented consent, so the demo invents both, with a
fixed seed, and says so everywhere it writes: in its output, on every catalog row
(`simulated = true`), and on every ledger event (actor `demo-simulation`, source
`simulated-consent-v1`).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from consent import ConsentEvent, Ledger
from consent.events import utc_now

DEMO_PURPOSE = "synthetic-training"
SIMULATION_NOTICE = (
    "SIMULATED: Br35H ships no subject ids and no documented consent; the demo's subjects "
    "and every consent event are invented (fixed seed) to show the pipeline."
)
SIM_ACTOR = "demo-simulation"
SIM_SOURCE = "simulated-consent-v1"


class ConsentMix(BaseModel):
    """Shares of simulated subjects per consent story (the rest are granted)."""

    never_asked: float = Field(0.10, ge=0, le=1)
    expired: float = Field(0.04, ge=0, le=1)
    revoked: float = Field(0.03, ge=0, le=1)
    future: float = Field(0.03, ge=0, le=1)


class SimulatedConsent(BaseModel):
    """What the simulation wrote, by story; `granted` is what is eligible at `at`."""

    at: datetime
    granted: list[str]
    never_asked: list[str]
    expired: list[str]
    revoked: list[str]
    future: list[str]
    events: int
    head_seq: int


def simulate_consent(
    ledger: Ledger,
    subject_ids: list[str],
    *,
    at: datetime | None = None,
    mix: ConsentMix | None = None,
    seed: int = 7,
    purpose: str = DEMO_PURPOSE,
) -> SimulatedConsent:
    """Append a simulated consent history for `subject_ids` in one transaction.

    Idempotent: event ids derive from the seed and subject, so a second run appends
    nothing new.
    """
    mix = mix or ConsentMix()
    now = at or utc_now()
    rng = random.Random(seed)
    stories: dict[str, list[str]] = {k: [] for k in ("granted", "never_asked", "expired", "revoked", "future")}
    events: list[ConsentEvent] = []

    def event(subject: str, n: int, action: str, effective: datetime, expires: datetime | None = None) -> None:
        events.append(ConsentEvent(
            event_id=f"demo-{seed}-{subject}-{n}", subject_id=subject, purpose=purpose,
            action=action, effective_at=effective, expires_at=expires,
            actor=SIM_ACTOR, source=SIM_SOURCE,
        ))

    for subject in sorted(subject_ids):
        roll = rng.random()
        granted_at = now - timedelta(days=rng.randint(30, 700))
        if roll < mix.never_asked:
            stories["never_asked"].append(subject)
            continue
        roll -= mix.never_asked
        if roll < mix.expired:
            stories["expired"].append(subject)
            event(subject, 0, "grant", granted_at, now - timedelta(days=rng.randint(1, 29)))
        elif roll < mix.expired + mix.revoked:
            stories["revoked"].append(subject)
            event(subject, 0, "grant", granted_at)
            event(subject, 1, "revoke", now - timedelta(days=rng.randint(1, 29)))
        elif roll < mix.expired + mix.revoked + mix.future:
            stories["future"].append(subject)
            event(subject, 0, "grant", now + timedelta(days=rng.randint(7, 60)))
        else:
            stories["granted"].append(subject)
            event(subject, 0, "grant", granted_at)
    result = ledger.append_many(events)
    return SimulatedConsent(at=now, events=len(events), head_seq=result.head.seq, **stories)
