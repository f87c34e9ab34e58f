"""Has anything a build depends on changed since the newest release?

A build whose consent state, sources and settings are the same as the newest release's
would publish a second, identical dataset (and a nightly schedule one every night), so
`consentgen build` and the refresh schedule ask first. The answer is one digest: SHA-256
over

- the consent ledger's head (sequence and hash): any event at all is a change;
- every record eligible at that moment (its subject's consent holds for the build's
  purpose), with its content hash and label: a grant or an expiry that passed changes
  this set even when the head did not move, since an expiry is no event;
- the pixel and candidate bans (a withdrawn image leaves the release short of it);
- the build settings, as the JSON the runs carry.

Publish records the digest of its own snapshot (head and time of the snapshot, sources
ingested by then) in `releases.inputs_digest`; the runner compares today's digest with
the newest published release's before any training. Every rounding goes one way: a
source ingested while a build ran is missing from that build's digest, so the next build
sees a change and publishes, never the reverse.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from consent import Ledger
from consent.events import utc_now
from consent.rows import Head
from pipelines.catalog import Ban, Catalog, Release, Snapshot
from pipelines.settings import BuildConfig
from pipelines.steps.release import PUBLISHED

DIGEST_DOMAIN = "consentgen-inputs-v1"


def inputs_digest(catalog: Catalog, ledger: Ledger, config: BuildConfig, *,
                  head: Head | None = None, at: datetime | None = None) -> str:
    """The digest of a build's inputs as of `head` and `at` (default: the ledger's head, now)."""
    head = head if head is not None else ledger.head()
    at = at if at is not None else utc_now()
    granted = set(ledger.eligible(config.purpose, at, as_of_seq=head.seq))
    records = sorted(
        (s.record_id, s.content_hash, "" if s.label is None else str(s.label))
        for s in catalog.sources()
        if s.subject_id in granted and s.ingested_at <= at)
    bans = sorted((b.kind, b.value) for b in catalog.select(Ban))
    body = {"head": [head.seq, head.hash], "purpose": config.purpose, "records": records,
            "bans": bans, "settings": json.loads(config.model_dump_json())}
    weights = config.generator.weights_dir.expanduser() if config.generator.weights_dir else None
    if config.generator.kind == "img2img" and weights is not None and weights.is_dir():
        from pipelines.steps.conditioning import weights_digest

        body["weights"] = weights_digest(weights)  # new weights in the same folder: a change
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{DIGEST_DOMAIN}\n{encoded}".encode()).hexdigest()


def snapshot_digest(catalog: Catalog, ledger: Ledger, snapshot: Snapshot,
                    config: BuildConfig) -> str:
    """The digest of what a build bound to `snapshot` honoured (what publish records)."""
    return inputs_digest(catalog, ledger, config, head=Head(snapshot.head_seq, snapshot.head_hash),
                         at=snapshot.taken_at)


def newest_release(catalog: Catalog) -> Release | None:
    """The highest published version (a pending one is not a release yet)."""
    found = catalog.select(Release, "WHERE status = ? ORDER BY version DESC LIMIT 1", [PUBLISHED])
    return found[0] if found else None


def unchanged_since(catalog: Catalog, ledger: Ledger, config: BuildConfig) -> str | None:
    """The newest release's version when a build now would have exactly its inputs, else
    None (no release yet, one from before digests were recorded, or something changed)."""
    newest = newest_release(catalog)
    if newest is None or not newest.inputs_digest:
        return None
    return newest.version if inputs_digest(catalog, ledger, config) == newest.inputs_digest else None
