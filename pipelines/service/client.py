"""Talking to the home's running service: the command line's (and the pipeline's) door.

`running_service(home)` finds the service through `service.json` and returns a client
that carries the owner token it wrote there, or None when no service runs for the home
(no file, or a process that is gone). Errors the service answers are raised as the
`ConsentgenError` they stand for, so the CLI prints the same one line either way.

`ledger_at(home)` is the ledger every reader and writer outside the service uses: while
the service runs it holds the file for writing and DuckDB refuses any other process's
open of it, read-only too, so they go through the service instead.
"""

from __future__ import annotations

import re
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from consentgen.duck import DEFAULT_MAX_WAIT_S
from consentgen.errors import (
    ConsentgenError,
    EventConflictError,
    ImportRejectedError,
    InvalidEventError,
    LedgerIntegrityError,
    LedgerLockedError,
    ServiceError,
    ServiceUnavailableError,
    TokenError,
    UndeclaredPurposeError,
)
from consentgen.home import data_home, ledger_path
from pipelines.service.discovery import ServiceInfo, info_path, read_info

if TYPE_CHECKING:
    from consent import Ledger

_BY_CODE: dict[str, type[ConsentgenError]] = {
    "event_conflict": EventConflictError,
    "undeclared_purpose": UndeclaredPurposeError,
    "invalid_event": InvalidEventError,
    "invalid_request": InvalidEventError,
    "import_rejected": ImportRejectedError,
    "ledger_locked": LedgerLockedError,
    "token": TokenError,
}
READY_WAIT_S = 5.0
"""How long a client waits for a service whose process is up but does not listen yet."""
_INTEGRITY = re.compile(r"^ledger integrity broken at sequence (\d+): (.*) "
                        r"\(expected (\S+), found (\S+)\)$", re.DOTALL)


class ServiceClient:
    """A bearer-token client of one running service (httpx, kept-alive connections)."""

    def __init__(self, info: ServiceInfo, *, timeout_s: float = 60.0) -> None:
        self.info = info
        self._http = httpx.Client(
            base_url=info.url, timeout=timeout_s,
            headers={"Authorization": f"Bearer {info.token}"},
            verify=ssl.create_default_context(cafile=info.ca_file) if info.ca_file else True,
        )

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON of a 2xx answer; an error answer raised as its `ConsentgenError`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(f"the consent service at {self.info.url} did not "
                                          f"answer {method} {path}: {exc}") from None
        if response.is_success:
            return response.json() if response.content else None
        raise error_from(response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def ready(self, wait_s: float = READY_WAIT_S) -> bool:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if self._http.get("/v1/health", timeout=2.0).is_success:
                    return True
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def error_from(response: httpx.Response) -> ConsentgenError:
    """The `ConsentgenError` an error answer stands for (one root, mapped at the edge)."""
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        return ServiceError(f"the consent service answered {response.status_code}: "
                            f"{response.text[:200]}")
    if code == "ledger_not_intact":
        return integrity_error(error)
    if code == "event_conflict":
        return EventConflictError(message, list(error.get("event_ids") or []))
    kind = _BY_CODE.get(code, ServiceError)
    return kind(f"{message} (consent service, HTTP {response.status_code})")


def integrity_error(error: dict[str, Any]) -> LedgerIntegrityError:
    """The service's `ledger_not_intact` answer as the error the file's verify raises, its
    sequence, hashes and detail intact (so `consent verify` prints the same line)."""
    message = str(error.get("message", ""))
    if "detail" in error:
        return LedgerIntegrityError(int(error.get("seq") or 0), error.get("expected"),
                                    error.get("found"), str(error["detail"]))
    parsed = _INTEGRITY.match(message)
    if parsed is None:
        return LedgerIntegrityError(int(error.get("seq") or 0), None, None, message)
    seq, detail, expected, found = parsed.groups()
    return LedgerIntegrityError(int(seq), None if expected == "-" else expected,
                                None if found == "-" else found, detail)


def ledger_at(home: str | Path | None = None, *, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> Ledger:
    """The home's ledger as this process may use it.

    The ledger this process holds, when it is the service (its reconcile runs here);
    else, while the home's service runs, a `ServiceLedger` over its API (the owner token
    in service.json); else the file itself, opened per call with the bounded wait. Costs
    one health request when a service.json is found, nothing more.
    """
    from consent import Ledger
    from consent.owner import held_ledger

    path = ledger_path(home)
    held = held_ledger(path)
    if held is not None:
        return held
    client = running_service(data_home(home))
    if client is not None:
        from pipelines.service.remote_ledger import ServiceLedger

        return ServiceLedger(client, path)
    return Ledger(path, max_wait_s=max_wait_s)


def running_service(home: Path) -> ServiceClient | None:
    """A client of the service that holds `home`, or None when none runs for it."""
    info = read_info(home)
    if info is None:
        return None
    client = ServiceClient(info)
    if not client.ready():
        client.close()
        raise ServiceUnavailableError(
            f"the consent service of {home} (pid {info.pid}, {info.url}) holds the ledger but "
            f"does not answer; stop it, or wait until it is up (if process {info.pid} is no "
            f"consent service, remove the stale {info_path(home)})")
    return client
