"""`consentgen reconcile`, and the reconcile a revoke runs at once.

A revoke recorded from the command line is honoured at once for that subject (their
images withdrawn from every release); the rebuild of the shards whose models saw them is
a build, which waits for `consentgen reconcile --rebuild` or the daemon's sensor. While
the consent service runs, the revoke goes through it and the service's own worker runs
that reconcile at once: the command waits (a bounded time) for the catalog to show it
done, and says what it withdrew.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from consent import Ledger, LedgerEvent
from consent.events import utc_now
from consentgen.errors import ConsentgenError, ReleaseError
from consentgen.home import catalog_path
from pipelines.catalog import Catalog
from pipelines.cli.common import (
    HomeOption,
    check_range,
    console,
    err_console,
    home_ledger,
    resolve_home,
)
from pipelines.settings import MAX_SHARDS, PROFILES, BuildConfig

if TYPE_CHECKING:
    from pipelines.service.remote_ledger import ServiceLedger

ProfileOption = Annotated[str | None, typer.Option(
    "--profile", help=f"Build profile: {', '.join(PROFILES)} (default $CONSENTGEN_PROFILE, else demo).")]
ShardsOption = Annotated[int | None, typer.Option(
    "--shards", help=f"SISA shards, 1-{MAX_SHARDS} (default from the build file).")]
MAX_IMAGES_PER_PASS = 1_000_000
REBUILD_HINT = "`consentgen reconcile --rebuild` or the daemon's sensor (`consentgen ui`)"
SERVICE_WITHDRAWAL_WAIT_S = 15.0
"""How long a revoke through the service waits for the service's withdrawal to show."""


def deployment_config(profile: str | None, shards: int | None = None, *,
                      home: Path | None = None, lenient: bool = False) -> BuildConfig:
    """The build settings a reconcile honours: the home's build file (under a named
    preset when given), with `shards` on top.

    `lenient` (withdrawing only, never building): a build file with a bad key does not
    stop a revocation from being honoured; the key is read at its preset's value and a
    warning says so on stderr.
    """
    from pipelines.buildfile import load_config, load_config_leniently

    check_range("--shards", shards, 1, MAX_SHARDS)
    overrides = {"shards": shards} if shards is not None else None
    if not lenient:
        return load_config(None, home=home, profile=profile, overrides=overrides)
    config, warning = load_config_leniently(home, profile=profile)
    if warning:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    return config.model_copy(update=overrides) if overrides else config


def reconcile(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the stale shards now, in process.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    max_images: Annotated[int, typer.Option(
        "--max-images", help=f"Images withdrawn per pass (1-{MAX_IMAGES_PER_PASS:,}).")] = 10_000,
    profile: ProfileOption = None,
    shards: ShardsOption = None,
    home: HomeOption = None,
) -> None:
    """Withdraw every published image whose subject's consent does not hold now; name (or
    rebuild) the shards whose models saw such a subject."""
    from pipelines.steps.reconcile import reconcile as run_reconcile

    check_range("--max-images", max_images, 1, MAX_IMAGES_PER_PASS)
    root = resolve_home(home)
    config = deployment_config(profile, shards, home=root, lenient=True)
    report = run_reconcile(Catalog(root), home_ledger(root), config, max_images=max_images)
    rebuilt = None
    if rebuild and report.stale_shards:
        from pipelines.defs.runner import BuildFailed, run_build

        config = deployment_config(profile, shards, home=root)  # a build reads the file strictly
        build = run_build(root, config, shards=report.stale_shards,
                          progress=not as_json and sys.stderr.isatty(),
                          show_steps=not as_json)
        if not build.success:
            raise BuildFailed(f"{report.line()}; the rebuild did not publish: {build.failure}; "
                              f"full log: {build.log_path}")
        rebuilt = {"shards": report.stale_shards, "version": build.version, "run_id": build.run_id,
                   "retrained": build.retrained, "unchanged_since": build.unchanged_since}
    if as_json:
        typer.echo(json.dumps({**report.model_dump(mode="json"), "rebuild": rebuilt}, sort_keys=True))
        return
    console.print(report.line())
    if rebuilt and rebuilt["unchanged_since"]:
        console.print(f"nothing changed since {rebuilt['unchanged_since']}: no rebuild published")
    elif rebuilt:
        console.print(f"rebuilt shard(s) {', '.join(map(str, rebuilt['shards']))}: "
                      f"published {rebuilt['version']} (run {rebuilt['run_id']})")


def reconcile_subject(root: Path, event: LedgerEvent, *, note: str | None = None,
                      ledger: Ledger | None = None) -> None:
    """Withdraw at once what a just-recorded revoke (`event`) takes away, and say what
    waits: a future-dated revoke for its time, the rebuild for a build. `ledger` is the
    one the revoke went to (default the home's)."""
    from pipelines.service.remote_ledger import ServiceLedger
    from pipelines.steps.reconcile import reconcile as run_reconcile

    subject_id = event.subject_id
    if not catalog_path(root).exists():
        console.print("no catalog in this home yet: nothing published to withdraw")
        return
    try:
        ledger = ledger or home_ledger(root)
        config = deployment_config(None, home=root, lenient=True)
        if isinstance(ledger, ServiceLedger) and config.service.withdraw_on_revoke:
            _service_withdrawal(root, ledger, event, config, note)
            return
        report = run_reconcile(Catalog(root), ledger, config, subject_id=subject_id, note=note)
    except ConsentgenError as exc:
        raise ReleaseError(f"the revoke is recorded, but withdrawing at once failed ({exc}); "
                           "run `consentgen reconcile`") from exc
    console.print(report.line())
    say_what_waits(event, report.stale_shards)


def say_what_waits(event: LedgerEvent, stale_shards: list[int]) -> None:
    """After a subject's withdrawal: a future-dated revoke waits for its time, the rebuild
    of the shards whose models saw the subject for a build."""
    if event.effective_at > utc_now():
        console.print(f"the revoke takes effect at {event.effective_at.isoformat()}: the first "
                      f"reconcile after then withdraws ({REBUILD_HINT})")
    if stale_shards:
        console.print(f"the rebuild of shard(s) {', '.join(map(str, stale_shards))} waits "
                      f"for {REBUILD_HINT}")


def _service_withdrawal(root: Path, ledger: ServiceLedger, event: LedgerEvent,
                        config: BuildConfig, note: str | None) -> None:
    """The service withdraws at once what a revoke it accepted takes away (its worker runs
    this subject's reconcile): running another here would only race it. Wait until the
    catalog holds none of the subject's images for the revoke's purpose (or the bound),
    and report the withdrawals that name this revoke."""
    from pipelines.catalog import ReleaseImage, Withdrawal
    from pipelines.catalog.lineage import images_standing_on

    subject, catalog = event.subject_id, Catalog(root)
    if event.effective_at > utc_now():
        console.print(f"nothing to withdraw yet: the revoke takes effect at "
                      f"{event.effective_at.isoformat()}: the first reconcile after then withdraws "
                      f"({REBUILD_HINT})")
        return
    if ledger.state(subject, event.purpose).granted:
        console.print(f"nothing to withdraw: consent of {subject} for {event.purpose} still holds "
                      "(a later grant decides)")
        return
    wanted = [(event.purpose, subject)]
    deadline = time.monotonic() + SERVICE_WITHDRAWAL_WAIT_S
    while images_standing_on(catalog, wanted, config.purpose, limit=1):
        if time.monotonic() >= deadline:
            left = len(images_standing_on(catalog, wanted, config.purpose, limit=MAX_IMAGES_PER_PASS))
            console.print(f"the consent service ({ledger.url}) is withdrawing {subject}'s images at "
                          f"once: {left} still published after {SERVICE_WITHDRAWAL_WAIT_S:.0f}s; "
                          f"`consentgen consent erasure {subject}` shows what was withdrawn")
            return
        time.sleep(0.1)
    rows = catalog.select(Withdrawal, "WHERE subject_id = ? AND event_seq = ?", [subject, event.seq])
    if not rows:
        console.print(f"nothing to withdraw: no published image of {subject} for {event.purpose}")
        return
    where = ", ".join(f"{v} ({n})" for v, n in sorted(Counter(r.version for r in rows).items()))
    console.print(f"the consent service withdrew {len(rows)} image(s) from {where} at once "
                  f"(revoke #{event.seq} of {subject})")
    if note:
        console.print("note: the service withdrew them, so the reason is not on their withdrawal rows")
    ids = sorted({r.image_id for r in rows})
    marks = ", ".join("?" * len(ids))
    say_what_waits(event, sorted({i.shard for i in catalog.select(
        ReleaseImage, f"WHERE image_id IN ({marks})", ids)}))
