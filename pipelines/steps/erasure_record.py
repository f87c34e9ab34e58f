"""The record of one subject's erasure: what a data protection officer needs to answer an
erasure request (`consentgen consent erasure SUBJECT`).

Their ledger events (every purpose), the images withdrawn from each release and how long
after the cause, every file erased and when, and what remains with the reason it may
(consent still holds, a shared PNG another record needs) or the reason it is still
there (the reconcile has not run since consent ended). Read-only: it changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from consent import Ledger
from consent.events import utc_now
from consentgen.errors import UnknownSubjectError
from pipelines.catalog import Catalog
from pipelines.catalog.erasure_queries import (
    WithdrawnImage,
    candidates_conditioned_on,
    candidates_of_models,
    content_still_needed,
    erasures,
    known_subject,
    models_trained_on,
    published_on,
    sources_of,
    withdrawals_touching,
)
from pipelines.settings import BuildConfig
from pipelines.steps.erasure import ConsentEnd, consent_ends

NOT_YET = "not erased yet: the reconcile has not run since consent ended"


class WithdrawnFromRelease(BaseModel):
    """The images of one release that stood on the subject and were withdrawn."""

    version: str
    images: int
    for_this_subject: int
    """Withdrawn for this subject's consent (the rest stood on them too, but were already
    withdrawn for another cause)."""
    reasons: list[str]
    first_withdrawn_at: datetime
    last_withdrawn_at: datetime
    max_latency_s: float | None
    """Longest time from the ledger event's recorded time to the withdrawal."""
    max_latency_effective_s: float | None
    """Longest time from when consent ended (effective time, expiry) to the withdrawal."""


class ErasedFile(BaseModel):
    kind: str
    ref: str
    path: str
    content_hash: str | None
    erased_at: datetime


class Remaining(BaseModel):
    """Something of the subject still on disk (or still in the catalog), and why."""

    kind: str
    ref: str
    path: str | None
    why: str


class ErasureRecord(BaseModel):
    subject_id: str
    as_of: datetime
    consent: ConsentEnd
    events: list[dict[str, Any]]
    withdrawn: list[WithdrawnFromRelease]
    erased: list[ErasedFile]
    remains: list[Remaining] = Field(default_factory=list)
    summary: str = ""


def erasure_record(catalog: Catalog, ledger: Ledger, config: BuildConfig, subject_id: str, *,
                   now: datetime | None = None) -> ErasureRecord:
    """Everything the home and the ledger say about erasing `subject_id`, as of `now`."""
    when = now or utc_now()
    events = ledger.events(subject_id=subject_id)
    if not events and not known_subject(catalog, subject_id):
        raise UnknownSubjectError(f"no subject {subject_id!r} in the catalog or the ledger at "
                                  f"{catalog.home}")
    verdict = consent_ends(ledger, {subject_id}, config.expiry_policy, when)[subject_id]
    record = ErasureRecord(
        subject_id=subject_id, as_of=when, consent=verdict,
        events=[e.public_dict() for e in events],
        withdrawn=_per_release(withdrawals_touching(catalog, subject_id)),
        erased=[ErasedFile(**e.model_dump(exclude={"subject_id"})) for e in erasures(catalog, subject_id)],
        remains=_remains(catalog, subject_id, verdict),
    )
    record.summary = _summary(record)
    return record


def _per_release(images: list[WithdrawnImage]) -> list[WithdrawnFromRelease]:
    by_version: dict[str, list[WithdrawnImage]] = defaultdict(list)
    for image in images:
        by_version[image.withdrawal.version].append(image)
    out = []
    for version, batch in sorted(by_version.items()):
        rows = [i.withdrawal for i in batch]
        latencies = [w.latency_s for w in rows if w.latency_s is not None]
        effective = [w.latency_effective_s for w in rows if w.latency_effective_s is not None]
        out.append(WithdrawnFromRelease(
            version=version, images=len(rows), for_this_subject=sum(i.because_of_subject for i in batch),
            reasons=sorted({w.reason for w in rows if w.reason}),
            first_withdrawn_at=min(w.withdrawn_at for w in rows),
            last_withdrawn_at=max(w.withdrawn_at for w in rows),
            max_latency_s=max(latencies, default=None),
            max_latency_effective_s=max(effective, default=None)))
    return out


def _remains(catalog: Catalog, subject_id: str, verdict: ConsentEnd) -> list[Remaining]:
    home = catalog.home
    pending = NOT_YET + (f" ({verdict.ended_at.isoformat(timespec='seconds')})" if verdict.ended_at else "")
    out = []
    records = sources_of(catalog, {subject_id})
    needed = content_still_needed(catalog, {r.content_hash for r in records}, {subject_id})
    for r in records:
        if not verdict.ended:
            why = f"source kept: {verdict.why}"
        elif needed.get(r.content_hash):
            why = (f"source PNG kept: shared with {needed[r.content_hash]} record(s) of other "
                   "subjects who stay (the same pixels); it goes when none of them needs it")
        else:
            why = pending
        out.append(Remaining(kind="source", ref=r.record_id, path=r.image_path, why=why))
    models = {t.model.model_version: t.model for t in models_trained_on(catalog, {subject_id})}
    standing = {v: m for v, m in models.items() if (home / m.model_path).exists()}
    for version, model in sorted(standing.items()):
        why = pending if verdict.ended else (
            f"checkpoint kept: {verdict.why} (a model that saw a subject no longer eligible "
            "for the build's purpose is never used again)")
        out.append(Remaining(kind="checkpoint", ref=version, path=model.model_path, why=why))
    left = [c for c in candidates_of_models(catalog, models) if (home / c.image_path).exists()]
    left += [k.candidate for k in candidates_conditioned_on(catalog, {subject_id})
             if (home / k.candidate.image_path).exists()]
    by_model: dict[str, int] = defaultdict(int)
    for c in left:
        by_model[c.model_version] += 1
    for version, n in sorted(by_model.items()):
        why = pending if verdict.ended else f"candidates kept with their checkpoint: {verdict.why}"
        out.append(Remaining(kind="candidate", ref=f"{n} candidate(s) of {version}", path=None, why=why))
    for image in published_on(catalog, subject_id):
        path = f"{image.release_path}/{image.file_name}"
        if (home / path).exists():
            why = (f"published: {verdict.why}" if not verdict.ended else
                   "published image not withdrawn yet: the reconcile has not run since consent ended")
            out.append(Remaining(kind="published", ref=f"{image.version}/{image.image_id}", path=path,
                                 why=why))
    return out


def _summary(record: ErasureRecord) -> str:
    withdrawn = sum(w.images for w in record.withdrawn)
    head = (f"{record.subject_id}: consent {'ended' if record.consent.ended else 'has not ended'}; "
            f"{withdrawn} image(s) withdrawn from {len(record.withdrawn)} release(s); "
            f"{len(record.erased)} erasure(s) recorded")
    if not record.remains:
        return head + ("; nothing of theirs remains in the data home" if record.consent.ended else "")
    if record.consent.ended and not record.erased and any(r.why.startswith(NOT_YET) for r in record.remains):
        return head + "; nothing erased yet: the reconcile has not run since consent ended"
    return head + f"; {len(record.remains)} item(s) remain (see why)"
