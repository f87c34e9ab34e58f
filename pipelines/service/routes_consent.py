"""`/v1/consent/...`: appends (group-committed) and the ledger's reads.

Appends are async handlers awaiting the group commit, so a thousand callers wait on one
transaction without a thread each; reads run in the thread pool on cursors of the held
connection.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from consent import Action, ConsentEvent, Head, LedgerEvent
from consent.events import PURPOSE_PATTERN, describe_validation_error, normalise_subject_id, parse_utc
from consent.writer import AppendResult
from pipelines.service.auth import require, runtime_of, touched
from pipelines.service.http_errors import ApiError, field_of
from pipelines.service.purposes import check_purposes_async
from pipelines.service.roles import Permission
from pipelines.service.runtime import Principal, ServiceRuntime

router = APIRouter(prefix="/v1/consent", tags=["consent"])

MAX_PAGE = 10_000

EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "oneOf": [{"$ref": "#/components/schemas/ConsentEvent"},
                      {"type": "array", "items": {"$ref": "#/components/schemas/ConsentEvent"}}],
        }, "example": {"subject_id": "s001", "purpose": "synthetic-training", "action": "grant",
                       "event_id": "cmp-7f3a", "effective_at": "2026-01-05T09:00:00Z"}}},
    }
}


def parse_body(body: bytes) -> Any:
    """JSON, or a 400 saying where it breaks; floats are refused naming where they are (no
    consent field is one: a number where a time or an id belongs is a client's bug)."""
    floats: list[_Float] = []

    def on_float(text: str) -> _Float:
        floats.append(_Float(text))
        return floats[-1]

    if not body.strip():
        raise ApiError(400, "malformed_json", "body is empty; send a JSON event object or a "
                       "list of them", "body")
    try:
        payload = json.loads(body, parse_float=on_float)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc.msg} at line "
                       f"{exc.lineno} column {exc.colno}", "body") from None
    except (ValueError, RecursionError) as exc:  # digits past int's limit, deep nesting
        raise ApiError(400, "malformed_json", f"body: {' '.join(str(exc).split())}",
                       "body") from None
    if floats:
        where = _float_path(payload) or "body"
        raise ApiError(422, "invalid_event", f"{where}: floating-point number "
                       f"{floats[0].text[:40]} is not allowed in a consent event", where)
    return payload


class _Float:
    """A float as parsed, kept only to name where it was."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _float_path(value: Any, path: str = "") -> str | None:
    """Where the first float is: `effective_at`, `[3].expires_at`, `[0].source.x`."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, _Float):
            return where
        children = (list(enumerate(item)) if isinstance(item, list)
                    else list(item.items()) if isinstance(item, dict) else [])
        for key, child in reversed(children):
            step = f"[{key}]" if isinstance(key, int) else (f".{key}" if where else str(key))
            stack.append((child, where + step))
    return None


def events_from(payload: Any, principal: Principal, limit: int) -> list[ConsentEvent]:
    """One event object or a list of them, validated; the first bad one is the 422."""
    items = payload if isinstance(payload, list) else [payload]
    single = not isinstance(payload, list)
    if not items:
        raise ApiError(422, "invalid_request", "body: an empty list holds no event", "body")
    if len(items) > limit:
        raise ApiError(413, "too_many_events", f"{len(items)} events in one request; at most "
                       f"{limit} ([service] max_events_per_request)", "body")
    events = []
    for i, item in enumerate(items):
        where = "" if single else f"[{i}]"
        if not isinstance(item, dict):
            raise ApiError(422, "invalid_event", f"{where or 'body'}: an event must be a JSON "
                           "object", where or "body")
        if "actor" not in item:
            item = {**item, "actor": principal.name if principal.via == "jwt"
                    else f"token:{principal.name}"}
        try:
            events.append(ConsentEvent.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = (where + ("." if where else "") + field_of(first.get("loc", ()))).replace(
                ".[", "[") if first.get("loc") else (where or "body")
            raise ApiError(422, "invalid_event", f"{where + ': ' if where else ''}"
                           f"{describe_validation_error(exc)}", field or "body") from None
    return events


def event_json(event: LedgerEvent) -> dict[str, Any]:
    return event.public_dict()


def head_json(head: Head) -> dict[str, Any]:
    return {"seq": head.seq, "hash": head.hash}


async def append(runtime: ServiceRuntime, events: list[ConsentEvent]) -> AppendResult:
    """Append one request's events by group commit; withdraw at once after a revoke.

    A revoke sent again (already present) withdraws again too: the first may have been
    recorded by a service killed before its withdrawal ran, and the pass is idempotent.
    """
    result: AppendResult = await runtime.ledger_commits.submit(events)
    if runtime.settings.withdraw_on_revoke:
        for subject in dict.fromkeys(e.subject_id for e in (*result.appended,
                                                            *result.already_present)
                                     if e.action is Action.REVOKE):
            runtime.withdraw_soon(subject)
    return result


def append_response(result: AppendResult, *, whole: bool = False) -> JSONResponse:
    """201 with each event's id, sequence, hash and recorded time (`whole`: every field,
    for a client that keeps the stored events, such as the CLI's; a CMP needs no more)."""
    def ref(e: LedgerEvent) -> dict[str, Any]:
        if whole:
            return event_json(e)
        return {"event_id": e.event_id, "seq": e.seq, "hash": e.hash,
                "recorded_at": e.recorded_at.isoformat().replace("+00:00", "Z")}

    return JSONResponse(status_code=201, content={
        "appended": len(result.appended),
        "already_present": len(result.already_present),
        "head": head_json(result.head),
        "events": [ref(e) for e in (*result.appended, *result.already_present)],
    })


@router.post("/events", status_code=201, openapi_extra=EVENTS_BODY,
             summary="Append one event or a list (201 once durable; idempotent by event_id)")
async def post_events(request: Request,
                      whole: bool = Query(False, description="answer with every field of "
                                          "each stored event"),
                      principal: Principal = Depends(require(Permission.CONSENT_WRITE))) -> JSONResponse:
    runtime = runtime_of(request)
    events = events_from(parse_body(await request.body()), principal,
                         runtime.settings.max_events_per_request)
    touched(request, *(e.subject_id for e in events))
    await check_purposes_async(runtime, events)
    response = append_response(await append(runtime, events), whole=whole)
    return response


# --- reads --------------------------------------------------------------------------------


def query_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_utc(value, name)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc), name) from None


def query_purpose(value: str) -> str:
    if not PURPOSE_PATTERN.match(value):
        raise ApiError(422, "invalid_request", f"purpose {value!r} must be lower-case letters, "
                       "digits and . _ : - (e.g. synthetic-training)", "purpose")
    return value


def path_subject(value: str) -> str:
    try:
        return normalise_subject_id(value)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc), "subject_id") from None


@router.get("/subjects/{subject_id}", summary="One subject's consent for a purpose")
def subject_state(request: Request, subject_id: str, purpose: str = Query(...),
                  at: str | None = Query(None, description="ISO-8601 with zone (default now)"),
                  as_of_seq: int | None = Query(None, ge=0, description="as the ledger stood "
                                                "at this sequence (what a build saw)"),
                  _: Principal = Depends(require(Permission.CONSENT_READ))) -> dict[str, Any]:
    subject = path_subject(subject_id)
    touched(request, subject)
    state = runtime_of(request).ledger.state(subject, query_purpose(purpose), query_time(at, "at"),
                                             as_of_seq=as_of_seq)
    return {"subject_id": state.subject_id, "purpose": state.purpose, "as_of_seq": as_of_seq,
            "at": state.at.isoformat().replace("+00:00", "Z"), "granted": state.granted,
            "status": state.status.dpv,
            "deciding_event": event_json(state.deciding_event) if state.deciding_event else None}


@router.get("/eligible", summary="Subjects whose consent for the purpose holds (a JSON list)")
def eligible(request: Request, purpose: str = Query(...), at: str | None = Query(None),
             as_of_seq: int | None = Query(None, ge=0),
             _: Principal = Depends(require(Permission.CONSENT_READ))) -> list[str]:
    subjects = runtime_of(request).ledger.eligible(query_purpose(purpose), query_time(at, "at"),
                                                   as_of_seq=as_of_seq)
    touched(request, *subjects)
    return subjects


@router.get("/states", summary="Every subject's state for a purpose, with its deciding event")
def states(request: Request, purpose: str = Query(...), at: str | None = Query(None),
           as_of_seq: int | None = Query(None, ge=0),
           _: Principal = Depends(require(Permission.CONSENT_READ))) -> list[dict[str, Any]]:
    found = runtime_of(request).ledger.states(query_purpose(purpose), query_time(at, "at"),
                                              as_of_seq=as_of_seq)
    touched(request, *(s.subject_id for s in found))
    return [{"subject_id": s.subject_id, "status": s.status.dpv, "granted": s.granted,
             "at": s.at.isoformat().replace("+00:00", "Z"),
             "deciding_event": event_json(s.deciding_event) if s.deciding_event else None}
            for s in found]


@router.get("/events", summary="The event log in sequence order, paged by after_seq")
def events_log(request: Request, after_seq: int = Query(0, ge=0),
               limit: int = Query(1000, ge=1, le=MAX_PAGE),
               subject_id: str | None = Query(None), purpose: str | None = Query(None),
               _: Principal = Depends(require(Permission.CONSENT_READ))) -> dict[str, Any]:
    subject = path_subject(subject_id) if subject_id is not None else None
    found = runtime_of(request).ledger.events(
        subject_id=subject, purpose=query_purpose(purpose) if purpose else None,
        after_seq=after_seq, limit=limit)
    touched(request, *(e.subject_id for e in found))
    return {"events": [event_json(e) for e in found],
            "next_after_seq": found[-1].seq if len(found) == limit else None}


@router.get("/head", summary="The chain head (sequence number and hash)")
def head(request: Request,
         _: Principal = Depends(require(Permission.LEDGER_VERIFY))) -> dict[str, Any]:
    return head_json(runtime_of(request).ledger.head())


@router.get("/purposes", summary="Every purpose the ledger holds an event for")
def purposes(request: Request,
             _: Principal = Depends(require(Permission.LEDGER_VERIFY))) -> list[str]:
    return runtime_of(request).ledger.purposes()


@router.get("/verify", summary="Recompute the hash chain (200 with the head when intact)")
def verify(request: Request,
           releases: bool = Query(True, description="also require each release's recorded head"),
           anchor_seq: int | None = Query(None, ge=0), anchor_hash: str | None = Query(None),
           _: Principal = Depends(require(Permission.LEDGER_VERIFY))) -> dict[str, Any]:
    from pipelines.catalog import Catalog
    from pipelines.steps.snapshot import release_anchors

    runtime = runtime_of(request)
    catalog = Catalog(runtime.home)
    anchors = release_anchors(catalog) if releases and catalog.path.exists() else {}
    anchor = None
    if anchor_seq is not None or anchor_hash is not None:
        if anchor_seq is None or not anchor_hash:
            raise ApiError(422, "invalid_request", "anchor_seq and anchor_hash go together",
                           "anchor_hash" if anchor_seq is not None else "anchor_seq")
        anchor = Head(anchor_seq, anchor_hash)
    found = runtime.ledger.verify(anchor, anchors=anchors)
    return {"intact": True, "head": head_json(found), "anchors": sorted(anchors)}
