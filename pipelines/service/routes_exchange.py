"""`/v1/consent/export` and `/v1/consent/import`: the ledger out and in, as ISO/IEC TS
27560 records with W3C DPV states (JSON-LD) or as JSON Lines of events.

An import is the CLI's `consent import` over HTTP: the same parser (`consent.exchange`),
all-or-nothing with every problem named by its index (a JSON list) or line (NDJSON) and
field, the same declared-purpose rule as an append, and ONE request to the group commit,
so a revoke in it withdraws at once like any other. Our export re-imports into the same
records (`consent.iso27560`).
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from consent import Action, ConsentEvent
from consent.exchange import ImportProblemsError, Parsed, Problem, conflicts, event_line, parse_objects, parse_text
from consent.iso27560 import iso27560_records
from consentgen.errors import EventConflictError
from pipelines.service.auth import require, runtime_of, touched
from pipelines.service.http_errors import ApiError
from pipelines.service.purposes import check_purposes, declared
from pipelines.service.roles import Permission
from pipelines.service.routes_consent import query_time, append, append_response, parse_body
from pipelines.service.runtime import Principal, ServiceRuntime

router = APIRouter(prefix="/v1/consent", tags=["exchange"])

FORMATS = ("iso27560", "jsonl")
NDJSON = "application/x-ndjson"
NDJSON_TYPES = frozenset({NDJSON, "application/ndjson", "application/jsonl",
                          "application/x-jsonlines", "application/jsonlines"})
JSON_LD = "application/ld+json"
SHOWN_PROBLEMS = 100
"""Problems listed in a refused import's answer (the count says how many there were)."""

IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"type": "object"}},
                "example": [{
                    "@context": {"dpv": "https://w3id.org/dpv#"}, "@type": "dpv:ConsentRecord",
                    "schema_version": "https://w3id.org/dpv/schema/iso-27560#record",
                    "pii_principal_id": "s001", "purpose": "synthetic-training",
                    "consent_status": "dpv:ConsentWithdrawn",
                    "events": [
                        {"event_id": "cmp-1", "consent_status": "dpv:ConsentGiven",
                         "effective_at": "2026-01-05T09:00:00Z"},
                        {"event_id": "cmp-2", "consent_status": "dpv:ConsentWithdrawn",
                         "effective_at": "2026-03-01T09:00:00Z"}]}],
            },
            NDJSON: {"schema": {"type": "string",
                                "description": "one event or ISO 27560 record per line"}},
        },
    }
}


@router.get("/export", summary="The ledger as ISO/IEC TS 27560 records (JSON-LD) or JSON Lines")
def export_consent(request: Request,
                   fmt: str = Query("iso27560", alias="format", description="iso27560 | jsonl"),
                   at: str | None = Query(None, description="the records' state time "
                                          "(iso27560; ISO-8601 with zone, default now)"),
                   _: Principal = Depends(require(Permission.CONSENT_READ))) -> Response:
    ledger = runtime_of(request).ledger
    if fmt == "iso27560":
        records = iso27560_records(ledger, query_time(at, "at"))
        touched(request, *dict.fromkeys(r["pii_principal_id"] for r in records))
        return JSONResponse(records, media_type=JSON_LD)
    if fmt == "jsonl":
        if at is not None:
            raise ApiError(422, "invalid_request", "at: a JSON Lines export holds every event; "
                           "`at` is for iso27560", "at")
        events = ledger.events()
        touched(request, *dict.fromkeys(e.subject_id for e in events))
        return Response("".join(event_line(e) + "\n" for e in events), media_type=NDJSON)
    raise ApiError(422, "invalid_request", f"format: {fmt!r} is not an export format; use "
                   f"{' or '.join(FORMATS)}", "format")


@router.post("/import", status_code=201, openapi_extra=IMPORT_BODY,
             summary="Import ISO 27560 records (a JSON list) or NDJSON events or records, "
                     "all or nothing")
async def import_consent(request: Request,
                         _: Principal = Depends(require(Permission.CONSENT_WRITE))) -> JSONResponse:
    runtime = runtime_of(request)
    body = await request.body()
    lines = _is_ndjson(request.headers.get("content-type"))
    parsed = await run_in_threadpool(_parse, body, lines)
    events = [p.event for p in parsed]
    touched(request, *dict.fromkeys(e.subject_id for e in events))
    limit = runtime.settings.max_events_per_request
    if len(events) > limit:
        raise ApiError(413, "too_many_events", f"{len(events)} events in one import; at most "
                       f"{limit} ([service] max_events_per_request): split it", "body")
    await anyio.to_thread.run_sync(_check_purposes, runtime, parsed, lines)  # may ask the ledger
    try:
        result = await append(runtime, events)
    except EventConflictError as exc:
        raise _refused(409, "event_conflict", conflicts(parsed, exc.event_ids), lines,
                       event_ids=exc.event_ids) from None
    response = append_response(result)
    return response


def _is_ndjson(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in NDJSON_TYPES


def _parse(body: bytes, lines: bool) -> list[Parsed]:
    """The request's events (in a worker thread: a large body parses for a while)."""
    try:
        if lines:
            try:
                text = body.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ApiError(400, "malformed_body", f"body is not UTF-8 text (byte {exc.start})",
                               "body") from None
            return parse_text(text, "jsonl", "the import", holder="the body")
        payload = parse_body(body)
        if isinstance(payload, dict):
            payload = [payload]
        if not isinstance(payload, list):
            raise ApiError(422, "invalid_request", "body: a JSON list of ISO/IEC TS 27560 records "
                           f"(or events), or {NDJSON} lines", "body")
        return parse_objects(payload, "the import")
    except ImportProblemsError as exc:
        raise _refused(422, "import_rejected", exc.found, lines) from None


def _where(at: int, field: str, lines: bool) -> str:
    """`[2].events[0].consent_status` in a JSON list; `line 3.events[0]...` in NDJSON."""
    if at < 0 or lines and at == 0:  # the import as a whole (lines count from 1)
        return "body"
    head = f"line {at}" if lines else f"[{at}]"
    return f"{head}.{field}" if field else head


def _refused(status: int, code: str, problems: list[Problem], lines: bool,
             **extra: Any) -> ApiError:
    """The answer to a refused import: the first problem's field, and every problem."""
    named = [{"field": _where(p.at, p.field, lines), "message": p.reason} for p in problems]
    first = named[0] if named else {"field": "body", "message": "refused"}
    shown = "; ".join(f"{n['field']}: {_bare(n['message'])}" for n in named[:5])
    more = f" (and {len(named) - 5} more)" if len(named) > 5 else ""
    return ApiError(status, code, f"{len(named)} problem(s), nothing imported: {shown}{more}",
                    first["field"], problems=named[:SHOWN_PROBLEMS], **extra)


def _bare(reason: str) -> str:
    """A reason without its leading `events[i]: ` (the field in front says it already)."""
    head, sep, rest = reason.partition(": ")
    return rest if sep and head.startswith("events[") else reason


def _check_purposes(runtime: ServiceRuntime, parsed: list[Parsed], lines: bool) -> None:
    """Declared purposes, as for an append; the refusal names the line or item."""
    known = declared(runtime)
    asked: set[tuple[str, str, Action]] = set()
    for p in parsed:
        event: ConsentEvent = p.event
        key = (event.subject_id, event.purpose, event.action)
        if event.purpose in known or key in asked:
            continue
        asked.add(key)
        try:
            check_purposes(runtime, [event])
        except ApiError as exc:
            field = _where(p.at, "purpose", lines)
            raise ApiError(exc.status, exc.code, f"{field}: {exc.message.removeprefix('purpose: ')}"
                           "; nothing imported", field) from None
