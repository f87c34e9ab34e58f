"""Withdrawing every published image that stands on a revoked subject, at once.

The image files are deleted from every release folder that holds them, their ids are
appended to that release's `WITHDRAWN` list (so mirrors can sync the deletion), and each
withdrawal is recorded in the catalog with its latency from the revoke event. Running it
twice withdraws nothing twice.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from consent import Ledger
from consent.events import Action, utc_now
from pipelines.catalog import Catalog, Withdrawal
from pipelines.settings import BuildConfig
from pipelines.catalog.lineage import published_images_of_subject, shards_trained_on
from consentgen.files import fsync_dir
from pipelines.steps.release import WITHDRAWN, releases_root


@dataclass
class WithdrawalReport:
    subject_id: str
    event_seq: int
    withdrawn: dict[str, list[str]] = field(default_factory=dict)  # version -> image ids
    shards: set[int] = field(default_factory=set)                    # to rebuild
    latency_s: float | None = None

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.withdrawn.values())


def withdraw_subject(catalog: Catalog, subject_id: str, *, event_seq: int,
                     revoked_recorded_at: datetime) -> WithdrawalReport:
    report = WithdrawalReport(subject_id, event_seq, shards=shards_trained_on(catalog, subject_id))
    images = published_images_of_subject(catalog, subject_id)
    by_version: dict[str, list] = defaultdict(list)
    for image in images:
        by_version[image.version].append(image)
    rows = []
    for version, batch in sorted(by_version.items()):
        folder = releases_root(catalog.home) / version
        for image in batch:
            (folder / image.file_name).unlink(missing_ok=True)
        with open(folder / WITHDRAWN, "a", encoding="utf-8") as fh:
            fh.writelines(f"{image.image_id}\n" for image in batch)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(folder)
        now = utc_now()
        latency = (now - revoked_recorded_at).total_seconds()
        report.withdrawn[version] = [i.image_id for i in batch]
        report.latency_s = latency
        rows += [Withdrawal(version=version, image_id=i.image_id, subject_id=subject_id,
                            event_seq=event_seq, revoked_recorded_at=revoked_recorded_at,
                            withdrawn_at=now, latency_s=latency) for i in batch]
    catalog.add(rows)
    return report


def withdrawn_ids(catalog: Catalog, version: str) -> list[str]:
    path = releases_root(catalog.home) / version / WITHDRAWN
    return path.read_text().split() if path.exists() else []


@dataclass
class LedgerStep:
    """What one evaluation of the revocation sensor did."""

    first_seq: int
    cursor: int
    shards: set[int] = field(default_factory=set)
    withdrawn: int = 0
    log: list[str] = field(default_factory=list)


def follow_ledger(ledger: Ledger, catalog: Catalog, config: BuildConfig, *, cursor: int) -> LedgerStep:
    """Withdraw what every revoke after `cursor` taints; name the shards to rebuild.

    Idempotent: if it fails half-way and runs again from the same cursor, nothing is
    withdrawn twice. Only shards whose current model saw the subject need rebuilding.
    """
    events = ledger.events(after_seq=cursor, purpose=config.purpose)
    step = LedgerStep(first_seq=cursor + 1, cursor=events[-1].seq if events else cursor)
    for event in events:
        if event.action is not Action.REVOKE:
            continue
        report = withdraw_subject(catalog, event.subject_id, event_seq=event.seq,
                                  revoked_recorded_at=event.recorded_at)
        step.withdrawn += report.count
        step.shards |= report.shards & set(range(config.shards))
        step.log.append(
            f"revoke #{event.seq}: withdrew {report.count} image(s) from "
            f"{', '.join(report.withdrawn) or 'no release'}"
            + (f" in {report.latency_s:.3f}s" if report.latency_s is not None else "")
            + f"; shards to rebuild: {sorted(report.shards) or 'none'}"
        )
    return step
