"""`consentgen init` and `consentgen consent ...`: thin over `consent.Ledger`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from consent import ConsentEvent, Ledger, LedgerEvent, export, import_events
from consent.exchange import EXPORTERS
from consentgen.errors import LedgerIntegrityError
from pipelines.catalog import Catalog
from pipelines.cli.common import HomeOption, console, err_console, parse_time, resolve_home
from pipelines.cli.erasure_cmds import erasure

app = typer.Typer(help="Record, inspect and exchange consent.", no_args_is_help=True)

PurposeOption = Annotated[str, typer.Option("--purpose", "-p", help="Named purpose, e.g. synthetic-training.")]
AtOption = Annotated[str | None, typer.Option("--at", help="ISO-8601 time with zone (default now).")]
EventIdOption = Annotated[
    str | None, typer.Option("--event-id", help="Idempotency key (default: a new UUID).")
]


def _ledger(home: Path | None) -> Ledger:
    return Ledger.at_home(resolve_home(home))


def _describe(event: LedgerEvent) -> str:
    expiry = f", expires {event.expires_at.isoformat()}" if event.expires_at else ""
    return (
        f"#{event.seq} {event.action.value} {event.subject_id} for {event.purpose} "
        f"effective {event.effective_at.isoformat()}{expiry} (event {event.event_id})"
    )


def init(home: HomeOption = None) -> None:
    """Create the data home and an empty consent ledger (idempotent)."""
    root = resolve_home(home)
    root.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.at_home(root)
    head = ledger.init()
    catalog = Catalog(root)
    catalog.ensure_schema()
    console.print(f"data home  {root}")
    console.print(f"ledger     {ledger.path} (head {head.seq}, {head.hash[:16]}…)")
    console.print(f"catalog    {catalog.path}")


def _record(action: str, subject: str, purpose: str, at: str | None, event_id: str | None,
            home: Path | None, **extra: str | None) -> LedgerEvent:
    fields = {
        "subject_id": subject,
        "purpose": purpose,
        "action": action,
        "effective_at": parse_time(at, "--at"),
        **{k: v for k, v in extra.items() if v is not None},
    }
    if event_id is not None:
        fields["event_id"] = event_id
    event = _ledger(home).append(ConsentEvent.parse(fields))
    console.print(f"recorded {_describe(event)}")
    return event


@app.command()
def grant(
    subject: Annotated[str, typer.Argument(help="Subject id.")],
    purpose: PurposeOption,
    at: AtOption = None,
    expires: Annotated[str | None, typer.Option("--expires", help="ISO-8601 expiry.")] = None,
    event_id: EventIdOption = None,
    actor: Annotated[str, typer.Option("--actor", help="Who recorded it.")] = "cli",
    source: Annotated[str, typer.Option("--source", help="Form version or receipt id.")] = "",
    home: HomeOption = None,
) -> None:
    """Record that SUBJECT grants consent for a purpose."""
    _record("grant", subject, purpose, at, event_id, home,
            expires_at=parse_time(expires, "--expires"), actor=actor, source=source)


@app.command()
def revoke(
    subject: Annotated[str, typer.Argument(help="Subject id.")],
    purpose: PurposeOption,
    at: AtOption = None,
    event_id: EventIdOption = None,
    actor: Annotated[str, typer.Option("--actor", help="Who recorded it.")] = "cli",
    source: Annotated[str, typer.Option("--source", help="Form version or receipt id.")] = "",
    home: HomeOption = None,
) -> None:
    """Record that SUBJECT withdraws consent for a purpose (may be back-dated with --at),
    and withdraw their published images at once (the rebuild waits for a build)."""
    from pipelines.cli.reconcile_cmds import reconcile_subject

    event = _record("revoke", subject, purpose, at, event_id, home, actor=actor, source=source)
    reconcile_subject(resolve_home(home), subject, effective_at=event.effective_at)


@app.command()
def status(
    subject: Annotated[str, typer.Argument(help="Subject id.")],
    purpose: PurposeOption,
    at: AtOption = None,
    home: HomeOption = None,
) -> None:
    """Print `granted` or `not granted`, and the event that decides it."""
    state = _ledger(home).state(subject, purpose, parse_time(at, "--at"))
    verdict = "granted" if state.granted else "not granted"
    console.print(f"{verdict} ({state.status.dpv} at {state.at.isoformat()})")
    if state.deciding_event is not None:
        console.print(f"deciding event: {_describe(state.deciding_event)}")
    else:
        console.print("deciding event: none (no consent on record: opt-in by default)")


@app.command()
def eligible(purpose: PurposeOption, at: AtOption = None, home: HomeOption = None) -> None:
    """Subjects whose consent for the purpose holds, one a line."""
    for subject in _ledger(home).eligible(purpose, parse_time(at, "--at")):
        typer.echo(subject)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A .csv or .jsonl file of events.")],
    home: HomeOption = None,
) -> None:
    """Append every event of FILE, or none if any line is bad (all are reported)."""
    result = import_events(_ledger(home), file)
    console.print(
        f"imported {len(result.appended)} event(s), {len(result.already_present)} already present; "
        f"head {result.head.seq} {result.head.hash[:16]}…"
    )


@app.command("export")
def export_(
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(EXPORTERS)}.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    home: HomeOption = None,
) -> None:
    """Export the ledger as JSON Lines, Parquet, or ISO/IEC TS 27560 records (JSON Lines)."""
    count = export(_ledger(home), fmt, output)
    console.print(f"wrote {count} {'record' if fmt == 'iso27560' else 'event'}(s) to {output}")


@app.command()
def verify(home: HomeOption = None) -> None:
    """Recompute the hash chain; exit non-zero at the first bad sequence."""
    ledger = _ledger(home)
    try:
        head = ledger.verify()
    except LedgerIntegrityError as exc:
        err_console.print(f"[bold red]ledger NOT intact:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"ledger intact: head {head.seq} {head.hash}")


@app.command()
def log(
    subject: Annotated[str | None, typer.Option("--subject", help="Only this subject.")] = None,
    purpose: Annotated[str | None, typer.Option("--purpose", help="Only this purpose.")] = None,
    home: HomeOption = None,
) -> None:
    """The events, in sequence order."""
    events = _ledger(home).events(subject_id=subject, purpose=purpose)
    table = Table("seq", "action", "subject", "purpose", "effective", "expires", "recorded",
                  "actor", "event id", "hash", box=None)
    for e in events:
        table.add_row(
            str(e.seq), e.action.value, e.subject_id, e.purpose, e.effective_at.isoformat(),
            e.expires_at.isoformat() if e.expires_at else "", e.recorded_at.isoformat(),
            e.actor, e.event_id, e.hash[:12],
        )
    console.print(table)
    console.print(f"{len(events)} event(s)")


app.command("erasure")(erasure)
