"""`consentgen consent erasure SUBJECT [--json]`: the record of a subject's erasure."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from pipelines.cli.common import HomeOption, console, home_ledger, resolve_home

if TYPE_CHECKING:
    from pipelines.steps.erasure_record import ErasureRecord


def erasure(
    subject: Annotated[str, typer.Argument(help="Subject id.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """What was withdrawn and erased of SUBJECT, when, and what remains and why."""
    from pipelines.catalog import Catalog
    from pipelines.buildfile import load_config
    from pipelines.steps.erasure_record import erasure_record

    root = resolve_home(home)
    record = erasure_record(Catalog(root), home_ledger(root), load_config(None, home=root), subject)
    if json_:
        typer.echo(record.model_dump_json(indent=2))
    else:
        print_record(record)


def _t(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def print_record(record: ErasureRecord, *, most_files: int | None = None) -> None:
    """The record for a person; `most_files` lists only that many erased files (the demo)."""
    c = record.consent
    console.print(f"Erasure record of {record.subject_id} (as of {_t(record.as_of)})")
    console.print(f"consent: {'ended' if c.ended else 'not ended'}: {c.why}")
    console.print(f"\nledger events ({len(record.events)}):")
    for e in record.events:
        expiry = f", expires {e['expires_at']}" if e.get("expires_at") else ""
        console.print(f"  #{e['seq']} {e['action']} for {e['purpose']} effective {e['effective_at']}"
                      f"{expiry}, recorded {e['recorded_at']} by {e['actor']} (event {e['event_id']})")
    console.print(f"\nimages withdrawn ({sum(w.images for w in record.withdrawn)}):")
    for w in record.withdrawn:
        latency = "" if w.max_latency_s is None else f", at most {w.max_latency_s:.3f}s after the event was recorded"
        effective = ("" if w.max_latency_effective_s is None
                     else f", {w.max_latency_effective_s:.3f}s after consent ended")
        console.print(f"  {w.version}: {w.images} image(s) ({w.for_this_subject} for this subject's consent), "
                      f"withdrawn {_t(w.first_withdrawn_at)} to {_t(w.last_withdrawn_at)}{latency}{effective}"
                      + (f"; {', '.join(w.reasons)}" if w.reasons else ""))
    console.print(f"\nfiles erased ({len(record.erased)}):")
    shown = record.erased if most_files is None else record.erased[:most_files]
    for e in shown:
        digest = f", content hash {e.content_hash}" if e.content_hash else ""
        console.print(f"  {_t(e.erased_at)} {e.kind} {e.ref}: {e.path}{digest}")
    if len(shown) < len(record.erased):
        by_kind = Counter(e.kind for e in record.erased)
        console.print(f"  … {len(record.erased) - len(shown)} more ("
                      + ", ".join(f"{n} {k}" for k, n in sorted(by_kind.items())) + " in all)")
    console.print(f"\nremains ({len(record.remains)}):")
    for r in record.remains:
        console.print(f"  {r.kind} {r.ref}{f' ({r.path})' if r.path else ''}: {r.why}")
    console.print(f"\n{record.summary}")
