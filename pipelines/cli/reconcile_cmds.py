"""`consentgen reconcile`, and the reconcile a revoke runs at once.

A revoke recorded from the command line is honoured at once for that subject (their
images withdrawn from every release); the rebuild of the shards whose models saw them is
a build, which waits for `consentgen reconcile --rebuild` or the daemon's sensor.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from consent import Ledger
from consent.events import utc_now
from consentgen.errors import ConsentgenError, ReleaseError
from consentgen.home import catalog_path
from pipelines.catalog import Catalog
from pipelines.cli.common import HomeOption, check_range, console, err_console, resolve_home
from pipelines.settings import MAX_SHARDS, PROFILES, BuildConfig

ProfileOption = Annotated[str | None, typer.Option(
    "--profile", help=f"Build profile: {', '.join(PROFILES)} (default $CONSENTGEN_PROFILE, else demo).")]
ShardsOption = Annotated[int | None, typer.Option(
    "--shards", help=f"SISA shards, 1-{MAX_SHARDS} (default from the build file).")]
MAX_IMAGES_PER_PASS = 1_000_000
REBUILD_HINT = "`consentgen reconcile --rebuild` or the daemon's sensor (`consentgen ui`)"


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
    report = run_reconcile(Catalog(root), Ledger.at_home(root), config, max_images=max_images)
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


def reconcile_subject(root: Path, subject_id: str, *, effective_at: datetime,
                      note: str | None = None) -> None:
    """Withdraw at once what a just-recorded revoke of `subject_id` takes away, and say
    what waits: a future-dated revoke for its time, the rebuild for a build."""
    from pipelines.steps.reconcile import reconcile as run_reconcile

    if not catalog_path(root).exists():
        console.print("no catalog in this home yet: nothing published to withdraw")
        return
    try:
        report = run_reconcile(Catalog(root), Ledger.at_home(root), deployment_config(None, home=root, lenient=True),
                               subject_id=subject_id, note=note)
    except ConsentgenError as exc:
        raise ReleaseError(f"the revoke is recorded, but withdrawing at once failed ({exc}); "
                           "run `consentgen reconcile`") from exc
    console.print(report.line())
    if effective_at > utc_now():
        console.print(f"the revoke takes effect at {effective_at.isoformat()}: the first reconcile "
                      f"after then withdraws ({REBUILD_HINT})")
    if report.stale_shards:
        console.print(f"the rebuild of shard(s) {', '.join(map(str, report.stale_shards))} waits "
                      f"for {REBUILD_HINT}")
