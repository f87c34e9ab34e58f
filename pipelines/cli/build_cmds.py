"""`consentgen build`, `consentgen release list|show|withdraw`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from consent import LedgerEvent
from consentgen.errors import ConfigError, ReleaseError, UnknownSubjectError
from pipelines.catalog import Catalog, Release, ReleaseImage
from pipelines.cli.common import (
    HomeOption,
    check_consent_purpose,
    check_range,
    console,
    home_ledger,
    resolve_home,
)
from pipelines.buildfile import load_config
from pipelines.settings import MAX_SHARDS, PROFILES, BuildConfig

release_app = typer.Typer(help="Published versions: list, show, withdraw.", no_args_is_help=True)

ProfileOption = Annotated[str | None, typer.Option(
    "--profile", help=f"Preset under the build file: {', '.join(PROFILES)} (default: the file's).")]
ShardsOption = Annotated[int | None, typer.Option(
    "--shards", help=f"SISA shards, 1-{MAX_SHARDS} (default from the build file).")]
ForceOption = Annotated[bool, typer.Option(
    "--force", help="Publish even when nothing changed since the newest release.")]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="Build file (default: consentgen.toml in the data home).")]
PurposeOption = Annotated[str | None, typer.Option(
    "--purpose", help="Consent purpose to honour (default: the build file's).")]


def build_config(root: Path, profile: str | None, shards: int | None, *,
                 config_file: Path | None = None, purpose: str | None = None) -> BuildConfig:
    """The build file (or the home's), its preset, and the command's flags on top."""
    check_range("--shards", shards, 1, MAX_SHARDS)
    overrides: dict[str, object] = {}
    if shards is not None:
        overrides["shards"] = shards
    if purpose is not None:
        overrides["purpose"] = purpose
    return load_config(config_file, home=root, profile=profile, overrides=overrides)


def build(profile: ProfileOption = None, shards: ShardsOption = None,
          config: ConfigOption = None, purpose: PurposeOption = None,
          force: ForceOption = False, home: HomeOption = None) -> None:
    """Materialise the whole graph in process: snapshot, train, sample, audit, publish.

    Publishes nothing when the consent state, the sources and the settings are those of
    the newest release (`--force` publishes anyway). One line per finished step on
    stdout; a build that cannot publish says why in one line on stderr, with the path of
    the run's full log.
    """
    from pipelines.defs.runner import BuildFailed, run_build

    root = resolve_home(home)
    settings = build_config(root, profile, shards, config_file=config, purpose=purpose)
    report = run_build(root, settings, progress=sys.stderr.isatty(), force=force, show_steps=True)
    if report.sweep is not None and report.sweep.changed:
        console.print(report.sweep.line())
    if report.unchanged_since:
        console.print(f"nothing changed since {report.unchanged_since}; --force to publish anyway")
        return
    if not report.success:
        raise BuildFailed(f"{report.failure}; full log: {report.log_path}")
    console.print(f"published [bold]{report.version}[/] (run {report.run_id})")
    console.print(f"release:   {root / 'releases' / report.version}")
    console.print(f"data card: {root / 'releases' / report.version / 'data_card.html'}")
    console.print(f"log:       {report.log_path}")


@release_app.command("list")
def list_(home: HomeOption = None) -> None:
    """Every published version with its consent head and withdrawals."""
    from pipelines.steps.release import list_releases

    table = Table("version", "created", "images", "withdrawn", "consent head", "latest", box=None)
    for r in list_releases(Catalog(resolve_home(home))):
        table.add_row(r["version"], r["created_at"].isoformat(timespec="seconds"), str(r["n_images"]),
                      str(r["withdrawn"]), f"{r['head_seq']} {r['head_hash'][:12]}",
                      "*" if r["latest"] else "")
    console.print(table)


@release_app.command()
def show(version: Annotated[str, typer.Argument(help="e.g. v0001 (default: LATEST)")] = "",
         home: HomeOption = None) -> None:
    """Where a release is, what it holds, and what was withdrawn from it."""
    from pipelines.steps.release import latest_version, releases_root
    from pipelines.steps.withdrawal import withdrawn_ids

    root = resolve_home(home)
    catalog = Catalog(root)
    version = version or latest_version(root) or ""
    found = catalog.select(Release, "WHERE version = ?", [version])
    if not found:
        raise ReleaseError(f"no release {version or '(none published yet)'}")
    rel = found[0]
    folder = releases_root(root) / version
    images = catalog.select(ReleaseImage, "WHERE version = ?", [version])
    present = sum((folder / i.file_name).exists() for i in images)
    console.print(f"{version}: {folder}")
    console.print(f"  consent snapshot head {rel.head_seq} {rel.head_hash}")
    console.print(f"  images published {rel.n_images}, present {present}, "
                  f"withdrawn {len(withdrawn_ids(catalog, version))}")
    console.print(f"  data card {folder / 'data_card.html'}")


@release_app.command()
def withdraw(
    subject: Annotated[str | None, typer.Option(
        "--subject", help="Revoke SUBJECT's consent on their behalf and withdraw their images.")] = None,
    image: Annotated[str | None, typer.Option(
        "--image", help="Take image ID down from every release and ban its pixels.")] = None,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Why (kept in the catalog, never published).")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Who asks (default $USER).")] = None,
    purpose: Annotated[str | None, typer.Option(
        "--purpose", help="Purpose to revoke (default the deployment's).")] = None,
    home: HomeOption = None,
) -> None:
    """Withdraw a subject's images (recorded on the ledger as an operator's revoke, so no
    rebuild brings them back), or one image, from every release now."""
    from pipelines.cli.reconcile_cmds import deployment_config
    from pipelines.steps.withdrawal import withdraw_image

    if (subject is None) == (image is None):
        raise ConfigError("name exactly one of --subject SUBJECT or --image ID")
    root = resolve_home(home)
    # withdrawing reads around a typo in the build file; the deployment's purpose, which a
    # subject's revoke defaults to, only a valid file can name
    catalog = Catalog(root)
    config = deployment_config(None, home=root, lenient=subject is None or purpose is not None)
    if image is not None:
        out = withdraw_image(catalog, image, config, note=reason)
        where = ", ".join(f"{v} ({len(ids)})" for v, ids in sorted(out.withdrawn.items()))
        console.print(f"withdrew image {image}: {sum(map(len, out.withdrawn.values()))} cop(ies) from "
                      f"{where or 'no release (already withdrawn)'}; banned {out.banned} "
                      "(its candidate and pixels)" + "".join(f"; {p}" for p in out.problems))
        return
    from consent.state import OPERATOR_WITHDRAWAL_SOURCE
    from pipelines.cli.reconcile_cmds import reconcile_subject, say_what_waits
    from pipelines.service.remote_ledger import ServiceLedger, event_from_json

    ledger = home_ledger(root)
    if not catalog.sources(subject_id=subject) and not ledger.events(subject_id=subject, limit=1):
        raise UnknownSubjectError(f"no subject {subject!r} in the catalog or the ledger at {root}")
    if purpose is not None:  # an undeclared one is refused unless the subject has it on record
        check_consent_purpose(root, "revoke", subject, purpose, flag=None, ledger=ledger)
    actor = actor or os.environ.get("USER") or "operator"
    if isinstance(ledger, ServiceLedger):  # the service revokes and withdraws in one request,
        # with the reason on the withdrawal rows (no second reconcile here to race its own)
        answer = ledger.client.post("/v1/releases/withdraw", {
            "subject_id": subject, "purpose": purpose or config.purpose, "reason": reason,
            "actor": actor})
        event = event_from_json(answer["event"])
        _say_revoked(event)
        console.print(answer["line"])
        say_what_waits(event, answer["stale_shards"])
        return
    event = ledger.revoke(subject, purpose or config.purpose, source=OPERATOR_WITHDRAWAL_SOURCE,
                          actor=actor)
    _say_revoked(event)
    reconcile_subject(root, event, note=reason, ledger=ledger)


def _say_revoked(event: LedgerEvent) -> None:
    console.print(f"recorded #{event.seq} revoke of {event.subject_id} for {event.purpose} by "
                  f"{event.actor} on the subject's behalf (dpv:ConsentRevoked)")
