"""Two pure-ASGI layers around every request: the body limit and the access log.

Pure ASGI (not Starlette's BaseHTTPMiddleware) because they sit on the hot path of a
thousand appends a second. The access log entry of a request is committed before the
first byte of its response is sent: a caller never sees an answer the log lacks (an
accepted append included: the ledger's actor is the caller's claim, the entry names
the token).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from pipelines.service.access_log import AccessEntry
from pipelines.service.runtime import ServiceRuntime

Scope = dict[str, Any]


def _error_response(status: int, code: str, message: str, field: str | None = None) -> tuple[dict, dict]:
    body = json.dumps({"error": {"code": code, "message": message, "field": field}}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    return start, {"type": "http.response.body", "body": body}


class BodyTooLarge(Exception):
    pass


class AccessLogMiddleware:
    """Logs every HTTP request (see the module docstring) and enforces the body limit."""

    def __init__(self, app: Any, runtime_of: Any) -> None:
        self.app = app
        self.runtime_of = runtime_of  # () -> ServiceRuntime, set once the app has started

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime: ServiceRuntime = self.runtime_of()
        started = time.perf_counter()
        at = datetime.now(UTC)
        state = scope.setdefault("state", {})
        limit = runtime.settings.max_body_bytes
        sent_start = False

        async def log_then(message: dict[str, Any]) -> None:
            nonlocal sent_start
            if message["type"] == "http.response.start" and not sent_start:
                sent_start = True
                await self._log(runtime, scope, state, at, started, message["status"])
            await send(message)

        length = _content_length(scope)
        if length is not None and length > limit:
            start, body = _error_response(413, "too_large", f"request body of {length} bytes is "
                                          f"over the limit of {limit}", "body")
            await log_then(start)
            await send(body)
            return
        seen = 0

        async def bounded_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, bounded_receive, log_then)
        except BodyTooLarge:
            if not sent_start:
                start, body = _error_response(413, "too_large", "request body is over the limit "
                                              f"of {limit} bytes", "body")
                await log_then(start)
                await send(body)
        except BaseException:
            if not sent_start:  # the error page Starlette sends next is a 500: log it
                await self._log(runtime, scope, state, at, started, 500)
                sent_start = True
            raise

    @staticmethod
    async def _log(runtime: ServiceRuntime, scope: Scope, state: dict[str, Any], at: datetime,
                   started: float, status: int) -> None:
        principal = state.get("principal")
        query = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client")
        entry = AccessEntry(
            logged_at=at,
            token=principal.name if principal else "-",
            role=principal.role.value if principal else "-",
            method=scope["method"],
            path=scope["path"] + (f"?{query}" if query else ""),
            status=status,
            latency_us=int((time.perf_counter() - started) * 1e6),
            client=client[0] if client else "-",
            subjects=sorted(set(state.get("subjects", ()))),
        )
        await runtime.access_commits.submit(entry)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
