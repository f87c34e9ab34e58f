"""The reconcile: every published image whose lineage holds a subject not eligible NOW is
withdrawn from every release, and the shards whose models saw such a subject are named
for a rebuild.

It is level-triggered: each pass compares what is published with what the ledger says
now, instead of reacting to revoke events, so an expiry (which is no event), a back-dated
revoke, a future-dated revoke whose time has come and an operator's withdrawal are all
honoured by the next pass, and a missed or failed pass is made good by the one after it.
One plain function behind the sensor's tick, `consentgen reconcile`, `consentgen consent
revoke` and `consentgen release withdraw --subject`.

Cost per pass: one `Ledger.eligible` per purpose, joined with the catalog in SQL; the
deciding events (`Ledger.states`, one query per purpose) are read only when something is
to be withdrawn; at most `max_images` images are taken down per pass (`more` says the
rest waits for the next). Idempotent: a withdrawn image is not present any more.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from datetime import UTC, datetime
from typing import NamedTuple

from pydantic import BaseModel, computed_field

from consent import ConsentState, ConsentStatus, Ledger, LedgerEvent
from consent.events import to_utc, utc_now
from consent.state import consent_ended_at
from pipelines.catalog import Catalog
from pipelines.catalog.lineage import (
    PresentImage,
    eligible_table,
    images_standing_on,
    ineligible_lineage,
    present_purposes,
    stale_models,
)
from pipelines.catalog.reasons import WithdrawalReason
from pipelines.settings import BuildConfig
from pipelines.catalog.lineage import withdrawn_per_version
from pipelines.steps.erasure import ErasureReport, erase_ended
from pipelines.steps.locks import releases_lock
from pipelines.steps.sweep import SweepReport, sweep
from pipelines.steps.withdrawal import Takedown, refresh_releases, shown_versions, take_down

DEFAULT_MAX_IMAGES = 10_000
"""Images taken down per pass: deleting, listing and recording this many stays well
inside a sensor tick (bench/reconcile.py); a larger backlog takes more passes."""


class ReconcileReport(BaseModel):
    """What one pass did; `line()` for people, `model_dump_json()` for machines."""

    at: datetime
    subject_id: str | None = None
    ledger_head: int
    withdrawn: dict[str, list[str]] = {}
    reasons: dict[str, int] = {}
    kept_expired_subjects: int = 0
    """Subjects whose grant expired while the expiry policy keeps their images."""
    banned: int = 0
    missing_folders: list[str] = []
    pending: list[str] = []
    missing_files: int = 0
    unhashed: int = 0
    refreshed: list[str] = []
    problems: list[str] = []
    stale_shards: list[int] = []
    stale_models: list[str] = []
    more: bool = False
    max_latency_s: float | None = None
    max_latency_effective_s: float | None = None
    sweep: SweepReport | None = None
    """What crashed runs had left, swept before the pass decided anything."""
    erasure: ErasureReport | None = None
    """What the pass erased of subjects whose consent has ended (after the withdrawals)."""
    elapsed_s: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.withdrawn.values())

    def rebuild_key(self) -> str:
        """Names the rebuild of exactly these stale models: a second pass that finds the
        same ones asks for the same run, which Dagster runs once."""
        digest = hashlib.sha256("\n".join(sorted(self.stale_models)).encode()).hexdigest()[:16]
        return f"reconcile-shards-{'-'.join(map(str, self.stale_shards))}-{digest}"

    def line(self) -> str:
        if self.count:
            where = ", ".join(f"{v} ({len(ids)})" for v, ids in sorted(self.withdrawn.items()))
            why = ", ".join(f"{n} {r}" for r, n in sorted(self.reasons.items()))
            parts = [f"withdrew {self.count} image(s) from {where} [{why}]; banned {self.banned}"]
            if self.max_latency_effective_s is not None:
                parts.append(f"at most {self.max_latency_effective_s:.1f}s after consent ended")
        else:
            parts = ["nothing to withdraw"]
        if self.kept_expired_subjects:
            parts.append(f"{self.kept_expired_subjects} expired subject(s) kept (expiry policy keep)")
        if self.missing_folders:
            parts.append(f"release folder(s) missing, recorded anyway: {', '.join(self.missing_folders)}")
        if self.pending:
            parts.append(f"pending release(s) {', '.join(self.pending)}: publish's consent read decides")
        if self.missing_files:
            parts.append(f"{self.missing_files} file(s) already gone")
        parts += self.problems
        parts.append(f"shards to rebuild: {', '.join(map(str, self.stale_shards))}" if self.stale_shards
                     else "no shard to rebuild")
        if self.more:
            parts.append("more to withdraw: the next pass goes on")
        if self.sweep is not None and (self.sweep.changed or self.sweep.skipped or self.sweep.problems):
            parts.append(self.sweep.line())
        if self.erasure is not None and (self.erasure.subjects or self.erasure.deferred):
            parts.append(self.erasure.line())
        who = f" for {self.subject_id}" if self.subject_id else ""
        return f"reconcile{who} (ledger head {self.ledger_head}): " + "; ".join(parts)


class _Cause(NamedTuple):
    """Why a subject's consent no longer holds: the reason, the deciding event and when
    consent ended (the revoke's effective time, or the grant's expiry)."""

    reason: WithdrawalReason
    event: LedgerEvent | None
    ended_at: datetime | None


def reconcile(catalog: Catalog, ledger: Ledger, config: BuildConfig, *, now: datetime | None = None,
              subject_id: str | None = None, max_images: int = DEFAULT_MAX_IMAGES,
              note: str | None = None) -> ReconcileReport:
    """One pass (see the module's docstring); `subject_id` limits it to that subject's
    images, `note` (an operator's text) goes on the rows it records, `now` moves the
    clock the ledger is read at (tests)."""
    started = time.perf_counter()
    at = utc_now() if now is None else to_utc(now, "now")
    swept = sweep(catalog)  # takes the releases lock itself: before ours, never inside it
    with releases_lock(catalog.home):  # decide and take down while no publish renames
        head = ledger.head().seq
        purposes = present_purposes(catalog, config.purpose) | {config.purpose}
        eligible = eligible_table({p: ledger.eligible(p, at, as_of_seq=head) for p in sorted(purposes)})
        offenders = ineligible_lineage(catalog, eligible, config.purpose, subject_id=subject_id)
        causes = _causes(ledger, offenders, at, head, config)
        images = images_standing_on(catalog, causes.keys(), config.purpose, limit=max_images + 1)
        items = [_takedown(p, causes, subject_id, note) for p in images[:max_images]]
        done = take_down(catalog, items, now=now)
        # every release with withdrawals, not only this pass's: a pass killed after its rows
        # and before the rewrite is finished here (a release already right costs a compare)
        versions = set(shown_versions(done)) | set(withdrawn_per_version(catalog))
        refreshed, problems = refresh_releases(catalog, sorted(versions), config)
        stale = [m for m in stale_models(catalog, eligible, config.purpose) if m.shard < config.shards]
    erased = erase_ended(catalog, ledger, config, now=now, subject_id=subject_id)
    return ReconcileReport(
        at=at, subject_id=subject_id, ledger_head=head, withdrawn=done.withdrawn,
        reasons=dict(Counter(t.reason.value for t in items)),
        kept_expired_subjects=len({s for p, s in offenders if (p, s) not in causes}),
        banned=done.banned, missing_folders=done.missing_folders, pending=done.pending,
        missing_files=done.missing_files, unhashed=done.unhashed, refreshed=refreshed,
        problems=problems, stale_shards=[m.shard for m in stale],
        stale_models=[m.model_version for m in stale], more=len(images) > max_images,
        max_latency_s=max((r.latency_s for r in done.rows if r.latency_s is not None), default=None),
        max_latency_effective_s=max((r.latency_effective_s for r in done.rows
                                     if r.latency_effective_s is not None), default=None),
        sweep=swept, erasure=erased, elapsed_s=round(time.perf_counter() - started, 4),
    )


def _causes(ledger: Ledger, offenders: set[tuple[str, str]], at: datetime, head: int,
            config: BuildConfig) -> dict[tuple[str, str], _Cause]:
    """(purpose, subject) -> why, for each offender whose images are to go (an expired
    grant is left out when the expiry policy keeps images made while consent held)."""
    out = {}
    for purpose in sorted({p for p, _ in offenders}):
        wanted = {s for p, s in offenders if p == purpose}
        if len(wanted) == 1:
            states = [ledger.state(next(iter(wanted)), purpose, at, as_of_seq=head)]
        else:
            states = [s for s in ledger.states(purpose, at, as_of_seq=head) if s.subject_id in wanted]
        by_subject: dict[str, ConsentState] = {s.subject_id: s for s in states}
        for subject in wanted:
            cause = _cause(by_subject.get(subject), config)
            if cause is not None:
                out[(purpose, subject)] = cause
    return out


def _cause(state: ConsentState | None, config: BuildConfig) -> _Cause | None:
    event = state.deciding_event if state else None
    if event is None:  # no event in effect now (`states` leaves such subjects out)
        return _Cause(WithdrawalReason.NOT_YET, None, None)
    if state.status is ConsentStatus.GIVEN:
        return None  # eligible after all (cannot differ at the same time and head)
    if state.status is ConsentStatus.EXPIRED:
        if config.expiry_policy == "keep":
            return None
        return _Cause(WithdrawalReason.EXPIRED, event, consent_ended_at(event))
    return _Cause(WithdrawalReason(state.status.value), event, event.effective_at)


def _takedown(present: PresentImage, causes: dict[tuple[str, str], _Cause],
              subject_id: str | None, note: str | None) -> Takedown:
    """The image's withdrawal, named after the asked-for subject, else the one whose
    consent ended first."""
    mine = {s: causes[(present.purpose, s)] for s in present.subjects
            if (present.purpose, s) in causes}
    far = datetime.max.replace(tzinfo=UTC)
    subject = subject_id if subject_id in mine else min(
        mine, key=lambda s: (mine[s].ended_at or far, s))
    cause = mine[subject]
    return Takedown(present, cause.reason, subject_id=subject, event=cause.event,
                    effective_at=cause.ended_at, note=note)
