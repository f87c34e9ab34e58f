"""`consentgen`: a thin command line over the library.

Each command group lives in its own module and is registered here. Anticipated failures
(`ConsentgenError`) print one clear line on stderr and exit non-zero, and so does a bad
option or argument (click's usage errors, exit 2); anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from consentgen.errors import ConsentgenError
from pipelines.cli import (
    build_cmds,
    consent_cmds,
    demo_cmds,
    ingest_cmds,
    provenance_cmds,
    reconcile_cmds,
    service_cmds,
    ui_cmds,
)
from pipelines.cli.common import err_console

app = typer.Typer(
    name="consentgen",
    help="Consent-bound synthetic image datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(consent_cmds.app, name="consent")
app.command("init")(consent_cmds.init)
app.command("demo")(demo_cmds.demo)
app.command("build")(build_cmds.build)
app.command("reconcile")(reconcile_cmds.reconcile)
app.command("ui")(ui_cmds.ui)
app.add_typer(build_cmds.release_app, name="release")
app.command("ingest")(ingest_cmds.ingest)
app.command("serve")(service_cmds.serve)
app.add_typer(service_cmds.token_app, name="token")
app.command("access-log")(service_cmds.access_log)
app.command("verify-image")(provenance_cmds.verify_image)


def main() -> None:
    """Console-script entry point."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        if type(exc).__name__ != "NoArgsIsHelpError":  # that one printed the help already
            err_console.print(f"[bold red]error:[/] {escape(usage_line(exc))}", highlight=False,
                              soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        sys.exit(130)
    except ConsentgenError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def usage_line(exc: Exception) -> str:
    """A usage error (a bad option or value) in one line, with where to read more."""
    message = getattr(exc, "format_message", None)
    text = " ".join((message() if message else str(exc)).split())
    ctx = getattr(exc, "ctx", None)
    return f"{text} (see `{ctx.command_path} --help`)" if ctx is not None else text


__all__ = ["app", "main"]
