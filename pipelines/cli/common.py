"""What every command module shares: consoles, the home option, time parsing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from consent.events import parse_utc
from consentgen.errors import ConfigError
from consentgen.home import HOME_ENV, data_home

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Data home (default ./data).", show_default=False),
]


def resolve_home(home: Path | None) -> Path:
    return data_home(home)


def parse_time(value: str | None, option: str) -> datetime | None:
    """ISO-8601 with an explicit offset; naive times are refused, never guessed."""
    if value is None:
        return None
    try:
        return parse_utc(value, option)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
