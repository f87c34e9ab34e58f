"""`POST /v1/webhooks/{name}`: a consent-management platform's pushes, signed and mapped.

Two keys guard a webhook, because either alone leaks: the bearer token (a role that may
call webhooks) says who may knock, the HMAC-SHA256 signature with the webhook's own
secret says the body is the one the CMP sent. The signature covers the timestamp header
too (`f"{timestamp}.".encode() + body`), so a captured request cannot be replayed once
it is older than `[service] webhook_tolerance_s`, nor re-dated without the secret;
inside the window the event ids (the CMP's, or derived from the content) make a resend
idempotent. A webhook without a usable secret refuses every call: never unsigned.

The webhook tables are read from the home's build file at request time (one `stat` per
call; re-read when it changes), so connecting a platform needs no restart. The payload is
mapped onto events by the table's shape (dotted paths, an action map) and the events of
one call are appended all-or-nothing as one request, like `POST /v1/consent/events`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from consent import ConsentEvent
from consent.events import describe_validation_error
from consent.exchange import derived_event_id
from consentgen.errors import ConfigError
from pipelines.service import routes_consent
from pipelines.service.auth import require, runtime_of, touched
from pipelines.service.http_errors import ApiError
from pipelines.service.purposes import check_purposes_async
from pipelines.service.roles import Permission
from pipelines.service.runtime import Principal, ServiceRuntime
from pipelines.service.settings import ACTIONS, EVENT_FIELDS, ServiceSettings, WebhookSettings

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

TIMESTAMP_HEADER = "X-Consentgen-Timestamp"
SIGNATURE_HEADER = "X-Consentgen-Signature"
MIN_SECRET_CHARS = 16  # a short shared secret is guessable offline from one signed request
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_TEXT_FIELDS = ("subject_id", "purpose", "event_id", "actor", "source")
_MISSING = object()

WEBHOOK_BODY = {
    "requestBody": {"required": True, "description": "the CMP's JSON payload, mapped onto "
                    "consent events by the webhook's table in consentgen.toml",
                    "content": {"application/json": {"schema": {}, "example": {"consents": [
                        {"dataSubject": {"id": "s001"}, "purpose": {"id": "synthetic-training"},
                         "status": "ACTIVE", "timestamp": "2026-01-05T09:00:00Z"}]}}}},
}


# --- the webhook tables, read when the build file changes ------------------------------


@dataclass(frozen=True)
class _Tables:
    stamp: int | None
    service: ServiceSettings
    broken: dict[str, str] = field(default_factory=dict)  # webhook name -> what is wrong


_cache: dict[int, _Tables] = {}
_guard = threading.Lock()


def tables(runtime: ServiceRuntime) -> _Tables:
    """The `[service]` table as the build file says now (the start-up one without a file)."""
    from pipelines.buildfile import build_file_path

    path = build_file_path(runtime.home)
    stamp = path.stat().st_mtime_ns if path.is_file() else None
    with _guard:
        hit = _cache.get(id(runtime))
    if hit is not None and hit.stamp == stamp:
        return hit
    found = _read(runtime, path) if stamp is not None else _Tables(None, runtime.settings)
    found = _Tables(stamp, found.service, found.broken)
    with _guard:
        _cache[id(runtime)] = found
    return found


def _read(runtime: ServiceRuntime, path: Path) -> _Tables:
    """Leniently, as the rest of the service reads the file: a typo elsewhere must not stop
    consent arriving. A webhook whose own table is wrong is named as broken rather than
    used with the bad key dropped (a dropped action map would misread every payload)."""
    from pipelines.buildfile import load_config_leniently, read_build_file

    config, problem = load_config_leniently(runtime.home)
    broken: dict[str, str] = {}
    if problem is not None:
        try:
            raw = read_build_file(path).get("service", {}).get("webhooks", {})
        except ConfigError as exc:
            raw, broken["*"] = {}, str(exc)
        for name, table in (raw.items() if isinstance(raw, dict) else ()):
            try:
                WebhookSettings.model_validate(table)
            except ValidationError as exc:
                broken[str(name)] = describe_validation_error(exc)
    return _Tables(None, config.service, broken)


def webhook(runtime: ServiceRuntime, name: str) -> tuple[WebhookSettings, int]:
    """The named webhook and the replay window; 404 for a name the file does not hold."""
    found = tables(runtime)
    if name in found.broken or (name not in found.service.webhooks and "*" in found.broken):
        problem = found.broken.get(name) or found.broken["*"]
        raise ApiError(503, "webhook_misconfigured", f"webhook {name} is misconfigured in "
                       f"the home's consentgen.toml: {problem}")
    hook = found.service.webhooks.get(name)
    if hook is None:
        known = ", ".join(sorted(found.service.webhooks)) or "none"
        raise ApiError(404, "unknown_webhook", f"no webhook {name!r} (configured: {known}); "
                       f"add a [service.webhooks.{name}] table to consentgen.toml", "name")
    return hook, found.service.webhook_tolerance_s


def secret(runtime: ServiceRuntime, name: str, hook: WebhookSettings) -> bytes:
    """The webhook's HMAC secret, read per call so that a rotated one counts at once."""
    from pipelines.buildfile import build_file_path

    value = ""
    if hook.secret_env:
        value = os.environ.get(hook.secret_env, "")
        where = f"environment variable {hook.secret_env}"
    elif hook.secret_file is not None:
        path = hook.secret_file.expanduser()
        path = path if path.is_absolute() else build_file_path(runtime.home).parent / path
        where = f"secret_file {path}"
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ApiError(503, "no_secret", f"webhook {name} has no secret configured: cannot "
                           f"read {where} ({exc.__class__.__name__})") from None
    else:
        raise ApiError(503, "no_secret", f"webhook {name} has no secret configured (set "
                       "secret_env or secret_file in its table); unsigned calls are refused")
    value = value.strip()
    if not value:
        raise ApiError(503, "no_secret", f"webhook {name} has no secret configured: {where} "
                       "is empty or unset")
    if len(value) < MIN_SECRET_CHARS:
        raise ApiError(503, "no_secret", f"webhook {name}'s secret ({where}) is shorter than "
                       f"{MIN_SECRET_CHARS} characters; use e.g. `openssl rand -hex 32`")
    return value.encode()


# --- the signature -----------------------------------------------------------------------


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (unix seconds)."""
    return "sha256=" + hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def check_signature(key: bytes, timestamp: str | None, signature: str | None, body: bytes,
                    tolerance_s: int, now: float) -> datetime:
    """The time the CMP signed at, once the signature holds and that time is in the window.

    The signature is checked first, so that "replayed" is only ever said of a request the
    CMP really sent (a forged one is just a bad signature)."""
    if not timestamp or not signature:
        missing = TIMESTAMP_HEADER if not timestamp else SIGNATURE_HEADER
        raise ApiError(401, "bad_signature", f"no {missing} header: sign each call with the "
                       "webhook's secret", missing)
    if not _TIMESTAMP.match(timestamp):
        raise ApiError(401, "bad_signature", f"{TIMESTAMP_HEADER} must be unix seconds "
                       f"(got {timestamp[:40]!r})", TIMESTAMP_HEADER)
    given = _SIGNATURE.match(signature.strip())
    if given is None:
        raise ApiError(401, "bad_signature", f"{SIGNATURE_HEADER} must be sha256=<64 hex "
                       "digits>", SIGNATURE_HEADER)
    expected = sign(key, timestamp, body).removeprefix("sha256=")
    if not hmac.compare_digest(expected.encode(), given.group(1).lower().encode()):
        raise ApiError(401, "bad_signature", "the signature does not match the body and "
                       "timestamp (HMAC-SHA256 of \"{timestamp}.\" + body with the "
                       "webhook's secret)", SIGNATURE_HEADER)
    skew = now - int(timestamp)
    if abs(skew) > tolerance_s:
        when = "old" if skew > 0 else "in the future"
        raise ApiError(401, "replayed", f"stale timestamp: {TIMESTAMP_HEADER} is "
                       f"{abs(int(skew))} s {when} (tolerance {tolerance_s} s, [service] "
                       "webhook_tolerance_s); a replay, or a clock to fix", TIMESTAMP_HEADER)
    return datetime.fromtimestamp(int(timestamp), UTC)


# --- the mapping -------------------------------------------------------------------------


def resolve(doc: Any, path: str) -> Any:
    """The value at dotted `path` (a digit segment indexes a list), or `_MISSING`."""
    value = doc
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isascii() and part.isdigit() \
                and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _key(value: Any) -> str:
    """A payload value as the toml's maps name it: strings as they are, else JSON text."""
    return value if isinstance(value, str) else json.dumps(value)


def map_events(payload: Any, name: str, hook: WebhookSettings, sent_at: datetime,
               limit: int) -> list[ConsentEvent]:
    """The payload's events, validated; the first bad one is the 422, naming its field.

    An event without an id gets one derived from its content. One without an effective
    time is dated at the signed timestamp, not at arrival: a replay inside the window
    carries the same timestamp (the signature covers it), so it derives the same id and
    is a no-op, where the arrival time would make every replay a new event.
    """
    items = resolve(payload, hook.events) if hook.events else [payload]
    if not isinstance(items, list):
        raise ApiError(422, "invalid_payload", f"events: the payload holds no list at "
                       f"{hook.events!r} (the events path of [service.webhooks.{name}])", "events")
    if not items:
        raise ApiError(422, "invalid_payload", "events: the payload holds no event", "events")
    if len(items) > limit:
        raise ApiError(413, "too_many_events", f"events: {len(items)} in one call; at most "
                       f"{limit} ([service] max_events_per_request)", "events")
    prefix = f"{hook.events}[" if hook.events else "payload["
    return [_event(item, i, f"{prefix}{i}]", name, hook, sent_at) for i, item in enumerate(items)]


def _event(item: Any, i: int, origin: str, name: str, hook: WebhookSettings,
           sent_at: datetime) -> ConsentEvent:
    where = f"events[{i}]"
    if not isinstance(item, dict):
        raise ApiError(422, "invalid_event", f"{where}: {origin} is not a JSON object", where)
    doc: dict[str, Any] = {}
    for key in EVENT_FIELDS:
        value = resolve(item, hook.fields.get(key, key))
        if value is _MISSING or value is None:
            continue
        if key in _TEXT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # numeric subject ids are common in CMPs: their decimal text
        doc[key] = value
    if "action" in doc:
        raw = _key(doc["action"])
        if raw in hook.actions:
            doc["action"] = hook.actions[raw]
        elif hook.actions and raw not in ACTIONS:
            path = hook.fields.get("action", "action")
            raise ApiError(422, "invalid_event", f"{where}.action: {raw[:80]!r} (at "
                           f"{origin}.{path}) is not mapped; the webhook maps "
                           f"{', '.join(sorted(hook.actions))} (actions in "
                           f"[service.webhooks.{name}])", f"{where}.action")
    if isinstance(doc.get("purpose"), str):
        doc["purpose"] = hook.purposes.get(doc["purpose"], doc["purpose"])
    if hook.purpose:
        doc.setdefault("purpose", hook.purpose)
    doc.setdefault("actor", f"webhook:{name}")
    doc.setdefault("source", hook.source or f"webhook:{name}")
    try:
        event = ConsentEvent.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc", ())
        bad = f"{where}.{loc[0]}" if loc else where
        path = f" (at {origin}.{hook.fields.get(str(loc[0]), loc[0])})" if loc else ""
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise ApiError(422, "invalid_event", f"{bad}{path}: {msg}", bad) from None
    if "event_id" not in doc:
        if event.effective_at is None:
            event = event.model_copy(update={"effective_at": sent_at})
        event = event.model_copy(update={"event_id": derived_event_id(event)})
    return event


def _payload(body: bytes) -> Any:
    """JSON (floats allowed: a CMP's payload holds more than consent fields)."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc.msg} at line "
                       f"{exc.lineno} column {exc.colno}", "body") from None
    except (ValueError, RecursionError) as exc:  # not UTF-8, or nested beyond reason
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}"[:300],
                       "body") from None


# --- the endpoint ------------------------------------------------------------------------


@router.post("/{name}", status_code=201, openapi_extra=WEBHOOK_BODY,
             summary="A CMP's signed push of grants and revokes (201 once durable)")
async def post_webhook(
        request: Request, name: str,
        timestamp: str | None = Header(None, alias=TIMESTAMP_HEADER,
                                       description="unix seconds when the CMP signed"),
        signature: str | None = Header(None, alias=SIGNATURE_HEADER,
                                       description="sha256=<hex HMAC-SHA256 of "
                                       "\"{timestamp}.\" + body with the webhook's secret>"),
        _: Principal = Depends(require(Permission.WEBHOOK_CALL))) -> JSONResponse:
    runtime = runtime_of(request)
    hook, tolerance_s = webhook(runtime, name)
    key = secret(runtime, name, hook)
    body = await request.body()
    received = time.time()
    sent_at = check_signature(key, timestamp, signature, body, tolerance_s, received)
    # an untimed event takes effect when it was sent, never later than it arrived: a CMP
    # whose clock runs ahead must not post-date a revoke past its withdrawal at once
    events = map_events(_payload(body), name, hook,
                        min(sent_at, datetime.fromtimestamp(received, UTC)),
                        runtime.settings.max_events_per_request)
    touched(request, *(e.subject_id for e in events))
    try:
        await check_purposes_async(runtime, events)
    except ApiError as exc:  # name the mapped event, as every other 422 here does
        one = not (exc.field or "").startswith("[")  # check_purposes says "purpose" of one
        exc.field = "events[0].purpose" if one else f"events{exc.field}"
        exc.message = f"events[0].{exc.message}" if one else f"events{exc.message}"
        raise
    response = routes_consent.append_response(await routes_consent.append(runtime, events))
    return response
