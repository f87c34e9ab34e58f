"""Plain functions behind the Dagster assets and sensor that do more than one call."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from consent import Ledger
from consent.events import Action
from pipelines.catalog import Catalog, Release, Snapshot
from pipelines.release import publish_release
from pipelines.settings import BuildConfig
from pipelines.withdrawal import withdraw_subject


def sources_summary(catalog: Catalog) -> dict[str, Any]:
    sources = catalog.sources()
    quarantined = catalog.quarantined()
    return {
        "records": len(sources),
        "subjects": len({s.subject_id for s in sources}),
        "labels": {str(k): v for k, v in sorted(Counter(s.label for s in sources).items(), key=str)},
        "simulated_records": sum(s.simulated for s in sources),
        "quarantined": len(quarantined),
        "quarantined_by_reason": dict(Counter(q.reason for q in quarantined)),
    }


def publish(catalog: Catalog, ledger: Ledger, snapshot: Snapshot, config: BuildConfig) -> Release:
    """Publish with the data card and the expectations' Data Docs inside the release."""
    from pipelines.card_assembly import card_renderer

    return publish_release(catalog, ledger, snapshot, config,
                           render_card=card_renderer(catalog, ledger, snapshot, config))


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
