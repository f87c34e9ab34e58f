"""One JSON shape for every error the service answers, mapped from `ConsentgenError`.

`{"error": {"code": ..., "message": ..., "field": ...}}`: a client (a CMP, a script)
reads the code, a person the message, and `field` names what to fix when one is to
blame. Anticipated failures keep their one-line message; nothing leaks a traceback.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from consentgen.errors import (
    AccessLogIntegrityError,
    ConfigError,
    ConsentgenError,
    EventConflictError,
    ImportRejectedError,
    InvalidEventError,
    LedgerIntegrityError,
    LedgerLockedError,
    ReleaseError,
    TokenError,
    UndeclaredPurposeError,
    UnknownSubjectError,
)
from consentgen.group_commit import CommitterClosedError


class ApiError(Exception):
    """An answer other than success, raised anywhere in a handler."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
        self.extra = extra


# Most specific first: the first match decides.
_STATUS: tuple[tuple[type[ConsentgenError], int, str], ...] = (
    (EventConflictError, 409, "event_conflict"),
    (UndeclaredPurposeError, 422, "undeclared_purpose"),
    (ImportRejectedError, 422, "import_rejected"),
    (InvalidEventError, 422, "invalid_event"),
    (LedgerIntegrityError, 409, "ledger_not_intact"),
    (AccessLogIntegrityError, 409, "access_log_not_intact"),
    (LedgerLockedError, 503, "ledger_locked"),
    (CommitterClosedError, 503, "shutting_down"),
    (UnknownSubjectError, 404, "unknown_subject"),
    (TokenError, 400, "token"),
    (ReleaseError, 409, "release"),
    (ConfigError, 400, "config"),
    (ConsentgenError, 400, "error"),
)


def api_error(exc: ConsentgenError) -> ApiError:
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            field = "purpose" if isinstance(exc, UndeclaredPurposeError) else None
            extra: dict[str, Any] = {}
            if isinstance(exc, EventConflictError):
                extra["event_ids"] = exc.event_ids
            if isinstance(exc, LedgerIntegrityError | AccessLogIntegrityError):
                extra["seq"] = exc.seq
            if isinstance(exc, LedgerIntegrityError):
                extra |= {"expected": exc.expected, "found": exc.found, "detail": exc.detail}
            return ApiError(status, code, str(exc), field, **extra)
    raise AssertionError("unreachable: ConsentgenError is last")  # pragma: no cover


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def one_line(text: str, limit: int = 500) -> str:
    """A message as one line (a client logs it, a person reads it; no wrapped traceback)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def respond(err: ApiError) -> JSONResponse:
    return JSONResponse(error_body(err.code, one_line(err.message), err.field, **err.extra),
                        status_code=err.status, headers=err.headers)


def field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """`('body', 0, 'effective_at')` -> `[0].effective_at`; `('query', 'at')` -> `at`."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return respond(exc)

    @app.exception_handler(ConsentgenError)
    async def _ours(_: Request, exc: ConsentgenError) -> JSONResponse:
        return respond(api_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # FastAPI's loc is (body, char offset)
            why = (first.get("ctx") or {}).get("error", "invalid JSON")
            return respond(ApiError(400, "malformed_json", f"body is not valid JSON: {why}",
                                    "body"))
        where = field_of(first.get("loc", ()))
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return respond(ApiError(422, "invalid_request", f"{where}: {msg}", where))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        code = {401: "unauthenticated", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "too_large"}.get(status, "http")
        message, field = str(exc.detail), None
        if status == 404 and exc.detail == "Not Found":
            message = (f"no endpoint {request.method} {request.url.path} (the API is under "
                       "/v1; see /docs)")
            field = "path"
        elif status == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = (f"method {request.method} is not allowed on {request.url.path}"
                       + (f" (allowed: {allowed})" if allowed else ""))
            field = "method"
        return respond(ApiError(status, code, message, field,
                                headers=getattr(exc, "headers", None)))
