"""The consent snapshot a build honours: the ledger head it read, verified first."""

from __future__ import annotations

from datetime import datetime

from consent import Ledger
from consent.events import utc_now
from consent.ledger import Head
from pipelines.catalog import Catalog, Snapshot
from pipelines.catalog.lineage import releases


def take_snapshot(ledger: Ledger, catalog: Catalog, purpose: str, *, at: datetime | None = None,
                  run_id: str | None = None) -> Snapshot:
    """Verify the ledger's chain and record its head as this build's consent state.

    Every later step asks the ledger "as of `head_seq`, at `taken_at`", so a release names
    exactly which consent state it honoured, even if events arrive during the build. The
    verification is anchored on the head the newest release recorded: a ledger rewritten
    consistently since then (every hash recomputed) still fails, naming that sequence.
    """
    head = ledger.verify(anchor=last_release_head(catalog))
    taken_at = at or utc_now()
    snapshot = Snapshot(
        snapshot_id=f"snap-{head.seq:08d}-{taken_at:%Y%m%dT%H%M%S%f}",
        purpose=purpose,
        head_seq=head.seq,
        head_hash=head.hash,
        taken_at=taken_at,
        run_id=run_id,
    )
    catalog.add([snapshot])
    return snapshot


def last_release_head(catalog: Catalog) -> Head | None:
    """The ledger head the newest release honoured (None before the first release)."""
    published = releases(catalog)
    if not published:
        return None
    newest = max(published, key=lambda r: (r.head_seq, r.created_at))
    return Head(newest.head_seq, newest.head_hash)


def release_anchors(catalog: Catalog) -> dict[str, Head]:
    """The ledger head every release recorded, by release ("release v0003"): anchors kept
    outside the ledger file, so rewriting the file cannot move them."""
    return {f"release {r.version}": Head(r.head_seq, r.head_hash) for r in releases(catalog)}
