"""Which source records a build may use: sources joined with the ledger at the snapshot.

Opt-in by default: a record is eligible only if its subject's consent for the purpose
holds at the snapshot time as of the snapshot's head, and its label is one the build
trains on (`pipelines.steps.classes`), of a class at least `labels.min_subjects_per_class`
eligible subjects stand behind (else `SmallClass`: a published class name must not point
at a few people). Every other record is written down as an exclusion with its reason. A build that could not train what it asks for stops here, before any
training, with one line saying why and what to change. Eligible subjects are split into SISA shards and a small,
stable holdout (consented records kept out of training for the privacy and utility
figures).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from consent import Ledger
from consentgen.errors import BuildInputError, NoEligibleRecordsError, TooFewRecordsError
from generators.shards import shard_of
from pipelines.catalog import Catalog, EligibleRecord, Exclusion, Snapshot, SourceRecord
from pipelines.catalog.lineage import eligible_records, exclusions
from pipelines.catalog.reasons import ExclusionReason
from pipelines.settings import BuildConfig
from pipelines.steps.conditioning import check_weights
from pipelines.steps.classes import ClassList, plan_classes, small_classes, snapshot_classes


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
    classes: ClassList

    def by_role(self, role: str) -> list[EligibleRecord]:
        return [r for r in self.records if r.role == role]

    def shard_counts(self) -> dict[int, int]:
        return dict(sorted(Counter(r.shard for r in self.records if r.role == "train").items()))

    def exclusion_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e.reason for e in self.exclusions).items()))


def select_eligible(catalog: Catalog, ledger: Ledger, snapshot: Snapshot, config: BuildConfig) -> EligibleSet:
    """Decide, record and return the snapshot's eligible records, exclusions and classes.

    A class that some but fewer than `labels.min_subjects_per_class` of the eligible
    subjects (consent and label, every role) stand behind leaves the class list, and its
    records are excluded as `SmallClass` (`pipelines.steps.classes.small_classes`).

    Raises (before anything is recorded, so before any training) `NoEligibleRecordsError`
    when no record may be used, and `TooFewRecordsError` when a shard or a class would get
    no training record; each says in one line what to change. An img2img build without
    its weights folder stops first (`MissingWeightsError`).
    """
    check_weights(config)
    granted = set(ledger.eligible(snapshot.purpose, snapshot.taken_at, as_of_seq=snapshot.head_seq))
    states = {s.subject_id: s for s in ledger.states(snapshot.purpose, snapshot.taken_at,
                                                     as_of_seq=snapshot.head_seq)}
    sources = catalog.sources()
    classes = plan_classes(sources, granted, config)
    known = set(classes.labels)
    reasons: dict[str, ExclusionReason] = {}
    for source in sources:
        subject = source.subject_id
        if subject not in granted:
            state = states.get(subject)
            reasons[source.record_id] = ExclusionReason.for_status(state.status if state else None)
        elif classes.conditional and source.label is None:
            reasons[source.record_id] = ExclusionReason.UNKNOWN_LABEL
        elif classes.conditional and source.label not in known:
            reasons[source.record_id] = ExclusionReason.NOT_IN_CLASSES
    small: frozenset[str] = frozenset()
    if classes.conditional:
        backers: dict[str, set[str]] = {}
        for source in sources:
            if source.record_id not in reasons:
                backers.setdefault(str(source.label), set()).add(source.subject_id)
        small = small_classes(backers, config.labels.min_subjects_per_class)
        classes = classes.without(small)
    records, exclusions = [], []
    for source in sources:
        subject = source.subject_id
        reason = reasons.get(source.record_id)
        if reason is None and source.label in small:
            reason = ExclusionReason.SMALL_CLASS
        if reason is not None:
            exclusions.append(Exclusion(snapshot_id=snapshot.snapshot_id, record_id=source.record_id,
                                        subject_id=subject, reason=reason))
            continue
        records.append(EligibleRecord(
            snapshot_id=snapshot.snapshot_id, record_id=source.record_id, subject_id=subject,
            label=source.label if classes.conditional else classes.labels[0],
            shard=shard_of(subject, config.shards),
            role="holdout" if is_holdout(subject, config.holdout_fraction) else "train",
        ))
    chosen = EligibleSet(records, exclusions, classes)
    check_enough(chosen, sources, snapshot.purpose, config)
    catalog.add(records, exclusions, classes.rows(snapshot.snapshot_id))
    return chosen


def load_eligible(catalog: Catalog, snapshot_id: str) -> EligibleSet:
    """What `select_eligible` recorded for this snapshot, read back."""
    return EligibleSet(eligible_records(catalog, snapshot_id), exclusions(catalog, snapshot_id),
                       snapshot_classes(catalog, snapshot_id))


def check_enough(chosen: EligibleSet, sources: Sequence[SourceRecord], purpose: str,
                 config: BuildConfig) -> None:
    """Refuse, in one line naming what to change, a build that could not train every shard
    and class it asks for, or only on sources stored smaller than it generates."""
    size = config.generator.image_size
    stored = min(((s.width, s.height) for s in sources), key=min, default=None)
    if stored is not None and min(stored) < size:  # a home holds one size: re-ingesting fails
        raise BuildInputError(
            f"generator.image_size = {size} is larger than the sources of this home (stored at "
            f"{stored[0]}x{stored[1]} px): set generator.image_size <= {min(stored)}, or ingest "
            f"into a new home with `consentgen ingest DIR --size {size}`")
    if not chosen.records:
        counts = chosen.exclusion_counts()
        why = ", ".join(f"{reason} {n}" for reason, n in counts.items())
        hint = "" if sources else " (ingest images with `consentgen ingest` first)"
        if counts.get(ExclusionReason.SMALL_CLASS):
            hint = (f"; every class has fewer than labels.min_subjects_per_class = "
                    f"{config.labels.min_subjects_per_class} eligible subjects (grant more "
                    'subjects, or labels.mode = "unconditional")')
        raise NoEligibleRecordsError(
            f"no eligible records for purpose {purpose}: {len(sources)} sources, "
            f"{len(chosen.exclusions)} excluded" + (f" ({why})" if why else "") + hint)
    train = chosen.by_role("train")
    if not train:
        raise TooFewRecordsError(
            f"all {len(chosen.records)} eligible records of purpose {purpose} are held out "
            f"(holdout_fraction = {config.holdout_fraction}): lower holdout_fraction, or grant "
            "more subjects")
    counts = chosen.shard_counts()
    empty = [s for s in range(config.shards) if not counts.get(s)]
    if empty:
        subjects = sorted({r.subject_id for r in train})
        fits = max((k for k in range(1, config.shards)
                    if len({shard_of(s, k) for s in subjects}) == k), default=1)
        raise TooFewRecordsError(
            f"shard(s) {', '.join(map(str, empty))} of {config.shards} would have no training "
            f"record ({len(train)} training records from {len(subjects)} subjects, sharded by "
            f"subject): use fewer shards (shards = {fits} fits)")
    if chosen.classes.conditional:
        trained = {r.label for r in train}
        missing = [label for label in chosen.classes.labels if label not in trained]
        if missing:
            listed = ", ".join(repr(label) for label in missing)
            rest = ", ".join(f'"{label}"' for label in chosen.classes.labels if label not in missing)
            drop = "it" if len(missing) == 1 else "them"
            where = (f"in labels.classes): drop {drop} from labels.classes" if config.labels.classes
                     else f"a label of the sources): set labels.classes = [{rest}]")
            raise TooFewRecordsError(
                f"class(es) {listed} have no eligible training record ({where}, or "
                'labels.mode = "unconditional"')
