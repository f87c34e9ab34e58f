"""Which source records a build may use: sources joined with the ledger at the snapshot.

Opt-in by default: a record is eligible only if its subject's consent for the purpose
holds at the snapshot time as of the snapshot's head. Every other record is written down
as an exclusion with its reason. Eligible subjects are split into SISA shards and a small,
stable holdout (consented records kept out of training for the privacy and utility
figures).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from consent import Ledger
from generators.shards import shard_of
from pipelines.catalog import Catalog, EligibleRecord, Exclusion, Snapshot
from pipelines.catalog.lineage import eligible_records, exclusions
from pipelines.catalog.reasons import ExclusionReason
from pipelines.settings import BuildConfig


def is_holdout(subject_id: str, fraction: float) -> bool:
    """Stable across builds, so a revocation never reshuffles who is held out."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"consentgen-holdout|{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(frozen=True)
class EligibleSet:
    records: list[EligibleRecord]
    exclusions: list[Exclusion]

    def by_role(self, role: str) -> list[EligibleRecord]:
        return [r for r in self.records if r.role == role]

    def shard_counts(self) -> dict[int, int]:
        return dict(sorted(Counter(r.shard for r in self.records if r.role == "train").items()))

    def exclusion_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e.reason for e in self.exclusions).items()))


def select_eligible(catalog: Catalog, ledger: Ledger, snapshot: Snapshot, config: BuildConfig) -> EligibleSet:
    granted = set(ledger.eligible(snapshot.purpose, snapshot.taken_at, as_of_seq=snapshot.head_seq))
    states = {s.subject_id: s for s in ledger.states(snapshot.purpose, snapshot.taken_at,
                                                     as_of_seq=snapshot.head_seq)}
    records, exclusions = [], []
    for source in catalog.sources():
        subject = source.subject_id
        if subject not in granted:
            state = states.get(subject)
            reason = ExclusionReason.for_status(state.status if state else None)
            exclusions.append(Exclusion(snapshot_id=snapshot.snapshot_id, record_id=source.record_id,
                                        subject_id=subject, reason=reason))
        elif source.label is None or source.label not in config.label_names:
            exclusions.append(Exclusion(snapshot_id=snapshot.snapshot_id, record_id=source.record_id,
                                        subject_id=subject, reason=ExclusionReason.UNKNOWN_LABEL))
        else:
            records.append(EligibleRecord(
                snapshot_id=snapshot.snapshot_id, record_id=source.record_id, subject_id=subject,
                label=source.label, shard=shard_of(subject, config.shards),
                role="holdout" if is_holdout(subject, config.holdout_fraction) else "train",
            ))
    catalog.add(records)
    catalog.add(exclusions)
    return EligibleSet(records, exclusions)


def load_eligible(catalog: Catalog, snapshot_id: str) -> EligibleSet:
    """What `select_eligible` recorded for this snapshot, read back."""
    return EligibleSet(eligible_records(catalog, snapshot_id), exclusions(catalog, snapshot_id))
