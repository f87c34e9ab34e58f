"""What every command module shares: consoles, the home option, time parsing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{option}: not an ISO-8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise ConfigError(f"{option}: {value!r} has no time zone; add Z or +00:00")
    return parsed
