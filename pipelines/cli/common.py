"""What every command module shares: consoles, the home option, time parsing, and the two
checks every consent write passes (the home exists, the purpose is declared)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from consent.events import parse_utc
from consentgen.errors import ConfigError, UndeclaredPurposeError
from consentgen.home import HOME_ENV, data_home, existing_home

if TYPE_CHECKING:  # the settings import pydantic models the CLI's startup need not load
    from consent import Ledger
    from pipelines.settings import BuildConfig
    from validation.release.signer import SignerChange

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Data home (default ./data).", show_default=False),
]

NEW_PURPOSE_FLAG = "--new-purpose"


def home_ledger(root: Path) -> Ledger:
    """The home's ledger as a command may use it: through the home's consent service while
    one runs (it holds the file, and DuckDB refuses any other process's open of it, even
    read-only), else the file (`pipelines.service.client.ledger_at`)."""
    from pipelines.service.client import ledger_at

    return ledger_at(root)


def resolve_home(home: Path | None) -> Path:
    """The data home of a command, which must exist: only `consentgen init` (and the demo,
    which runs it) creates one, through `create_home`."""
    return existing_home(home)


@dataclass(frozen=True)
class NewHome:
    root: Path
    ledger: Path
    head_seq: int
    head_hash: str
    catalog: Path
    build_file: Path
    wrote_build_file: bool
    served_by: str | None = None
    """The URL of the consent service that holds the ledger, when one runs for the home."""
    signer: Path | None = None
    """The home's development signer folder; None when the build file names a sign_cert."""
    signer_made: SignerChange | bool = False
    sign_cert: Path | None = None
    """The build file's provenance.sign_cert, when it names one."""


def create_home(home: Path | None, config: BuildConfig | None = None) -> NewHome:
    """Create the data home, its empty ledger and catalog, and the commented build file
    (never overwriting one) at `config`'s values (default: the demo preset's); idempotent.
    The one place a home comes into being; while the home's consent service runs, the
    ledger is the one it holds (and exists already)."""
    from pipelines.buildfile import build_file_path, write_template
    from pipelines.catalog import Catalog
    from pipelines.service.remote_ledger import ServiceLedger

    root = data_home(home)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file, not a folder for a data home")
    root.mkdir(parents=True, exist_ok=True)
    ledger = home_ledger(root)
    head = ledger.init()
    catalog = Catalog(root)
    catalog.ensure_schema()
    build_file = build_file_path(root)
    wrote = write_template(build_file, config)
    served_by = ledger.url if isinstance(ledger, ServiceLedger) else None
    signer, made, sign_cert = _signer(root)
    return NewHome(root, ledger.path, head.seq, head.hash, catalog.path, build_file, wrote,
                   served_by, signer, made, sign_cert)


def _signer(root: Path) -> tuple[Path | None, SignerChange | bool, Path | None]:
    """The home's local development signer, made once, unless the build file names the
    deployment's own certificate: (its folder, made now, the build file's sign_cert).

    Read leniently: a typo elsewhere in the build file does not stop a home being made."""
    from pipelines.buildfile import load_config_leniently
    from validation.release.signer import DEV_SIGNER_DIR, ensure_dev_signer

    sign_cert = load_config_leniently(root)[0].provenance.sign_cert
    if sign_cert is not None:
        return None, False, sign_cert
    made = ensure_dev_signer(root)[1]
    return root / DEV_SIGNER_DIR, made, None


def require_declared(root: Path, purposes: Iterable[str], *, declare: bool = False,
                     flag: str | None = NEW_PURPOSE_FLAG) -> list[str]:
    """Refuse purposes the home does not declare, or (`declare`) declare them in its build
    file; returns those newly declared.

    Why: a grant or revoke for a misspelt purpose would otherwise be recorded forever
    while the subject's real consent stays untouched. `flag` is the option that declares
    one on purpose, named in the refusal (None where the command has none).
    """
    from pipelines.buildfile import build_file_path, declare_purposes, declared_purposes

    asked = list(dict.fromkeys(purposes))
    known = declared_purposes(root)
    missing = [p for p in asked if p not in known]
    if not missing:
        return []
    if declare:
        declare_purposes(root, missing)
        return missing
    names = ", ".join(repr(p) for p in missing)
    how = f"add it to purposes in {build_file_path(root)}" + (f" or pass {flag}" if flag else "")
    raise UndeclaredPurposeError(
        f"purpose{'s' if len(missing) > 1 else ''} {names} "
        f"{'are' if len(missing) > 1 else 'is'} not declared (declared: {', '.join(known)}); {how}")


def check_consent_purpose(root: Path, action: str, subject: str, purpose: str, *,
                          declare: bool = False, flag: str | None = NEW_PURPOSE_FLAG,
                          ledger: Ledger | None = None) -> list[str]:
    """`require_declared` for one grant or revoke, except that a revoke of consent the
    subject has on record for the purpose always goes through: withdrawing consent is
    never refused, whatever the build file declares now. `ledger`: the caller's, if it
    has one (default the home's)."""
    if action == "revoke":
        ledger = ledger or home_ledger(root)
        if ledger.path.exists() and ledger.events(subject_id=subject, purpose=purpose, limit=1):
            return []
    return require_declared(root, [purpose], declare=declare, flag=flag)


def check_range(flag: str, value: int | None, low: int, high: int | None = None) -> None:
    """Refuse a numeric option out of its range at the edge, in one line naming it, rather
    than let it be ignored or fail deep inside a run."""
    if value is None:
        return
    if value < low or (high is not None and value > high):
        allowed = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{flag} {value}: must be {allowed}")


def parse_time(value: str | None, option: str) -> datetime | None:
    """ISO-8601 with an explicit offset; naive times are refused, never guessed."""
    if value is None:
        return None
    try:
        return parse_utc(value, option)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
