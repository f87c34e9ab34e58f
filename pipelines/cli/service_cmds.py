"""`consentgen serve`, `consentgen token ...` and `consentgen access-log`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import HomeOption, console, resolve_home


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address (default [service] host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default [service] port, 8470).")] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate (chain).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key.")] = None,
    home: HomeOption = None,
) -> None:
    """Run the consent service: the ledger's one writer while it runs (Ctrl-C stops it)."""
    from pipelines.buildfile import load_config_leniently
    from pipelines.cli.common import check_range, err_console
    from pipelines.service.serve import run_service, service_url

    root = resolve_home(home)
    check_range("--port", port, 1, 65535)
    check_tls(tls_cert, tls_key)
    config, warning = load_config_leniently(root)
    if warning:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    settings = config.service.model_copy(update={k: v for k, v in
                                                 (("host", host), ("port", port)) if v is not None})
    url = service_url(settings.host, settings.port, tls_cert is not None)
    console.print(f"consent service for {root} on {url} (OpenAPI at {url}/docs); Ctrl-C stops it")
    run_service(root, settings, tls_cert=tls_cert, tls_key=tls_key)


def check_tls(cert: Path | None, key: Path | None) -> None:
    """Both or neither, readable and a matching pair: refused in one line before the
    ledger is opened, not as an ssl traceback once uvicorn starts."""
    import ssl

    from consentgen.errors import ConfigError

    if cert is None and key is None:
        return
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if key is None else ("--tls-key",
                                                                          "--tls-cert")
        raise ConfigError(f"{given} needs {missing} too (a PEM certificate and its private key)")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise ConfigError(f"{flag} {path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            cert, key, password=lambda: b"")  # an encrypted key: refused, not a tty prompt
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"--tls-cert {cert} / --tls-key {key}: cannot be used together "
                          f"({' '.join(str(exc).split())})") from None


token_app = typer.Typer(help="Bearer tokens of the consent service.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option("--role", help="consent-writer, consent-officer, "
                                      "data-engineer, auditor or reader.")],
    name: Annotated[str, typer.Option("--name", help="Who it is for (unique), e.g. cmp-onetrust.")],
    home: HomeOption = None,
) -> None:
    """Make a token and print it alone on stdout: it is shown once and stored hashed."""
    from pipelines.service import tokens
    from pipelines.service.client import running_service

    root = resolve_home(home)
    tokens.check_role(role)
    tokens.check_name(name)
    service = running_service(root)
    if service is not None:
        with service:
            made = service.post("/v1/tokens", {"name": name, "role": role})
        typer.echo(made["token"])
        return
    with _access(root) as con:
        token, _ = tokens.create(con, name, role)
    typer.echo(token)


@token_app.command("list")
def token_list(home: HomeOption = None) -> None:
    """Every token's name, role and dates (never the token)."""
    from rich.table import Table

    from pipelines.service import tokens
    from pipelines.service.client import running_service
    from pipelines.service.routes_admin import token_json

    root = resolve_home(home)
    service = running_service(root)
    if service is not None:
        with service:
            rows = service.get("/v1/tokens")
    elif not _access_file(root).exists():
        rows = []
    else:
        with _access(root, read_only=True) as con:
            rows = [token_json(r) for r in tokens.listing(con)]
    table = Table("name", "role", "created", "revoked", box=None)
    for row in rows:
        table.add_row(row["name"], row["role"], row["created_at"], row["revoked_at"] or "")
    console.print(table)
    console.print(f"{len(rows)} token(s)")


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="The token's name.")],
                 home: HomeOption = None) -> None:
    """Revoke a token: the service refuses it from the next request on."""
    from pipelines.service import tokens
    from pipelines.service.client import running_service

    root = resolve_home(home)
    tokens.check_name(name)  # a name that is no token's is refused before it reaches a URL
    service = running_service(root)
    if service is not None:
        with service:
            service.delete(f"/v1/tokens/{name}")
    else:
        with _access(root) as con:
            tokens.revoke(con, name)
    console.print(f"revoked token {name}")


def access_log(
    since: Annotated[str | None, typer.Option("--since", help="ISO-8601 with zone.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Recompute the hash chain instead.")] = False,
    home: HomeOption = None,
) -> None:
    """The service's access log (who read or changed what, when, with what outcome)."""
    from rich.table import Table

    from pipelines.cli.common import parse_time
    from pipelines.service import access_log as log
    from pipelines.service.client import running_service

    root = resolve_home(home)
    when = parse_time(since, "--since")
    service = running_service(root)
    if verify:
        if service is not None:
            with service:
                head = service.get("/v1/access-log/verify")["head"]
            seq, digest = head["seq"], head["hash"]
        else:
            with _access(root, read_only=True) as con:
                seq, digest = log.verify(con)
        console.print(f"access log intact: head {seq} {digest}")
        return
    if service is not None:
        with service:
            entries, after = [], 0
            while after is not None:
                page = service.get("/v1/access-log", after_seq=after, limit=10_000,
                                   since=since)
                entries += page["entries"]
                after = page["next_after_seq"]
    else:
        from pipelines.service.routes_admin import entry_json

        with _access(root, read_only=True) as con:
            entries = [entry_json(e) for e in log.entries(con, since=when)]
    table = Table("seq", "at (UTC)", "token (role)", "request", "subjects", "status", "ms",
                  box=None, expand=False)
    for column in table.columns:  # fold, never cut: an audit line must be read whole
        column.overflow = "fold"
    for e in entries:
        table.add_row(str(e["seq"]), e["logged_at"][:19] + "Z", f"{e['token']} ({e['role']})",
                      f"{e['method']} {e['path']}", _subjects(e["subjects"]), str(e["status"]),
                      f"{e['latency_us'] / 1000:.1f}")
    console.print(table, soft_wrap=False)
    console.print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")


def _subjects(subjects: list[str], shown: int = 5) -> str:
    more = len(subjects) - shown
    return ",".join(subjects[:shown]) + (f" +{more} more" if more > 0 else "")


def _access_file(root: Path) -> Path:
    from pipelines.service.access_store import access_path

    return access_path(root)


def _access(root: Path, *, read_only: bool = False):  # noqa: ANN202 - a connection's context
    from pipelines.service.access_store import open_access

    return open_access(_access_file(root), read_only=read_only)
