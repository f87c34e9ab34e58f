"""`consentgen init` and `consentgen consent ...`: thin over `consent.Ledger`.

Each command uses `common.home_ledger`: the file itself, or, while `consentgen serve` runs for
the home (it holds the file, and DuckDB refuses other processes' opens), the same calls
through the service, printing the same lines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from consent import Action, ConsentEvent, Head, Ledger, LedgerEvent, export, read_events
from consent.exchange import EXPORTERS, append_events
from consentgen.errors import ConsentgenError, LedgerIntegrityError, UndeclaredPurposeError
from pipelines.buildfile import build_file_path, declared_purposes
from pipelines.cli.common import (
    HomeOption,
    console,
    create_home,
    err_console,
    check_consent_purpose,
    home_ledger,
    parse_time,
    require_declared,
    resolve_home,
)
from pipelines.cli.erasure_cmds import erasure

app = typer.Typer(help="Record, inspect and exchange consent.", no_args_is_help=True)

PurposeOption = Annotated[str, typer.Option("--purpose", "-p", help="Named purpose, e.g. synthetic-training.")]
AtOption = Annotated[str | None, typer.Option("--at", help="ISO-8601 time with zone (default now).")]
EventIdOption = Annotated[
    str | None, typer.Option("--event-id", help="Idempotency key (default: a new UUID).")
]
NewPurposeOption = Annotated[bool, typer.Option(
    "--new-purpose", help="Declare the purpose in the build file first (one not declared yet).")]


def _ledger(home: Path | None) -> Ledger:
    return home_ledger(resolve_home(home))


def _describe(event: LedgerEvent) -> str:
    expiry = f", expires {event.expires_at.isoformat()}" if event.expires_at else ""
    return (
        f"#{event.seq} {event.action.value} {event.subject_id} for {event.purpose} "
        f"effective {event.effective_at.isoformat()}{expiry} (event {event.event_id})"
    )


def init(home: HomeOption = None) -> None:
    """Create the data home: an empty consent ledger, the catalog, a commented build
    file (`consentgen.toml`, never overwritten) and, unless the build file names a
    provenance.sign_cert, a local development signer for the images' C2PA manifests
    (untrusted outside the home). Idempotent; the only command that creates a home."""
    made = create_home(home)
    console.print(f"data home  {made.root}")
    held = f"; held by the consent service at {made.served_by}" if made.served_by else ""
    console.print(f"ledger     {made.ledger} (head {made.head_seq}, {made.head_hash[:16]}…{held})")
    console.print(f"catalog    {made.catalog}")
    console.print(f"build file {made.build_file} ({'written' if made.wrote_build_file else 'kept as it was'})")
    console.print(f"purposes   {', '.join(declared_purposes(made.root))}")
    if made.sign_cert is not None:
        console.print(f"signer     {made.sign_cert} (the build file's provenance.sign_cert)")
    elif made.signer is not None:
        console.print(f"signer     {made.signer} ({made.signer_made or 'kept as it was'}): "
                      "an UNTRUSTED local development CA and signer, for testing only; set "
                      "provenance.sign_cert and provenance.sign_key in the build file to sign "
                      "releases others should trust")


def _say_declared(root: Path, purposes: list[str]) -> None:
    for purpose in purposes:
        console.print(f"declared purpose {purpose} in {build_file_path(root)}")


def _record(action: str, subject: str, purpose: str, at: str | None, event_id: str | None,
            home: Path | None, new_purpose: bool = False,
            **extra: str | None) -> tuple[LedgerEvent, Ledger]:
    root = resolve_home(home)
    fields = {
        "subject_id": subject,
        "purpose": purpose,
        "action": action,
        "effective_at": parse_time(at, "--at"),
        **{k: v for k, v in extra.items() if v is not None},
    }
    if event_id is not None:
        fields["event_id"] = event_id
    asked = ConsentEvent.parse(fields)
    ledger = home_ledger(root)
    _say_declared(root, check_consent_purpose(root, asked.action.value, asked.subject_id,
                                              asked.purpose, declare=new_purpose, ledger=ledger))
    result = ledger.append_many([asked])
    console.print(f"{'recorded' if result.appended else 'already recorded'} {_describe(result.event)}")
    console.print(f"ledger {ledger.path} (head {result.head.seq})")
    return result.event, ledger


@app.command()
def grant(
    subject: Annotated[str, typer.Argument(help="Subject id.")],
    purpose: PurposeOption,
    at: AtOption = None,
    expires: Annotated[str | None, typer.Option("--expires", help="ISO-8601 expiry.")] = None,
    event_id: EventIdOption = None,
    actor: Annotated[str, typer.Option("--actor", help="Who recorded it.")] = "cli",
    source: Annotated[str, typer.Option("--source", help="Form version or receipt id.")] = "",
    new_purpose: NewPurposeOption = False,
    home: HomeOption = None,
) -> None:
    """Record that SUBJECT grants consent for a declared purpose."""
    _record("grant", subject, purpose, at, event_id, home, new_purpose,
            expires_at=parse_time(expires, "--expires"), actor=actor, source=source)


@app.command()
def revoke(
    subject: Annotated[str, typer.Argument(help="Subject id.")],
    purpose: PurposeOption,
    at: AtOption = None,
    event_id: EventIdOption = None,
    actor: Annotated[str, typer.Option("--actor", help="Who recorded it.")] = "cli",
    source: Annotated[str, typer.Option("--source", help="Form version or receipt id.")] = "",
    new_purpose: NewPurposeOption = False,
    home: HomeOption = None,
) -> None:
    """Record that SUBJECT withdraws consent for a purpose (may be back-dated with --at),
    and withdraw their published images at once (the rebuild waits for a build); while
    the consent service runs, it withdraws them, and this waits to say what it did."""
    from pipelines.cli.reconcile_cmds import reconcile_subject

    event, ledger = _record("revoke", subject, purpose, at, event_id, home, new_purpose,
                            actor=actor, source=source)
    reconcile_subject(resolve_home(home), event, ledger=ledger)


@app.command()
def status(
    subject: Annotated[str, typer.Argument(help="Subject id.")],
    purpose: PurposeOption,
    at: AtOption = None,
    home: HomeOption = None,
) -> None:
    """Print `granted` or `not granted`, and the event that decides it."""
    _note_undeclared(home, purpose)
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
    _note_undeclared(home, purpose)
    for subject in _ledger(home).eligible(purpose, parse_time(at, "--at")):
        typer.echo(subject)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A .csv or .jsonl file of events.")],
    new_purpose: Annotated[bool, typer.Option(
        "--new-purpose", help="Declare the file's undeclared purposes in the build file.")] = False,
    home: HomeOption = None,
) -> None:
    """Append every event of FILE, or none if any line is bad (all are reported). Every
    line needs effective_at (when the consent took effect); lines without an event id get
    one derived from their content: a file imported twice is appended once."""
    root = resolve_home(home)
    parsed = read_events(file)
    ledger = home_ledger(root)
    try:
        _check_import_purposes(root, ledger, parsed, new_purpose)
    except UndeclaredPurposeError as exc:
        raise UndeclaredPurposeError(f"{file}: nothing imported: {exc}") from None
    result = append_events(ledger, file, parsed)
    console.print(
        f"{len(result.appended)} appended, {len(result.already_present)} already recorded; "
        f"ledger {ledger.path} (head {result.head.seq} {result.head.hash[:16]}…)"
    )


def _check_import_purposes(root: Path, ledger: Ledger, parsed: list[tuple[int, ConsentEvent]],
                           new_purpose: bool) -> None:
    """Every purpose of the file declared, except revokes of consent on record (as for
    `consent revoke`); the ledger is asked only about revokes of undeclared purposes."""
    undeclared = {e.purpose for _, e in parsed} - set(declared_purposes(root))
    if not undeclared:
        return
    revokes = {(e.subject_id, e.purpose) for _, e in parsed
               if e.action is Action.REVOKE and e.purpose in undeclared}
    on_record = {pair for pair in revokes if ledger.path.exists()
                 and ledger.events(subject_id=pair[0], purpose=pair[1], limit=1)}
    asked = [e.purpose for _, e in parsed
             if not (e.action is Action.REVOKE and (e.subject_id, e.purpose) in on_record)]
    _say_declared(root, require_declared(root, asked, declare=new_purpose))


def _note_undeclared(home: Path | None, purpose: str) -> None:
    """A read for a purpose nobody declared answers "not granted" for everyone: say why."""
    try:
        known = declared_purposes(resolve_home(home))
    except ConsentgenError:
        return  # the read itself reports a missing home; a broken build file is build's to report
    if purpose not in known:
        err_console.print(f"note: purpose {purpose!r} is not declared (declared: {', '.join(known)})")


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
def verify(
    releases: Annotated[bool, typer.Option(
        "--releases/--no-releases",
        help="Also require the ledger head each release recorded (default): a chain "
             "rewritten consistently since a release fails here, naming the release.")] = True,
    home: HomeOption = None,
) -> None:
    """Recompute the hash chain; exit non-zero at the first bad sequence."""
    root = resolve_home(home)
    anchors = release_anchors(root) if releases else {}
    ledger = home_ledger(root)
    try:
        head = ledger.verify(anchors=anchors)
    except LedgerIntegrityError as exc:
        err_console.print(f"[bold red]ledger NOT intact:[/] {exc}")
        raise typer.Exit(2) from None
    anchored = f"; the heads of {len(anchors)} release(s) are in it" if anchors else ""
    console.print(f"ledger intact: head {head.seq} {head.hash}{anchored}")


def release_anchors(root: Path) -> dict[str, Head]:
    """Each release's recorded ledger head (`pipelines.steps.snapshot.release_anchors`)."""
    from pipelines.catalog import Catalog
    from pipelines.steps.snapshot import release_anchors as anchors_of

    catalog = Catalog(root)
    if not catalog.path.exists():
        err_console.print(f"note: no catalog at {catalog.path}: no release heads to check")
        return {}
    return anchors_of(catalog)


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
