"""`/v1/health`, `/v1/access-log` and `/v1/tokens`: the service about itself."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from consentgen.errors import TokenError
from pipelines.service import access_log, tokens
from pipelines.service.auth import require, runtime_of
from pipelines.service.http_errors import ApiError
from pipelines.service.roles import Permission
from pipelines.service.runtime import Principal

router = APIRouter(prefix="/v1")


@router.get("/health", tags=["service"], summary="200 when ready (no token needed)")
def health(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    ledger, access = runtime.ledger_commits, runtime.access_commits
    ok = runtime.healthy
    return JSONResponse(status_code=200 if ok else 503, content={
        "status": "ok" if ok else "degraded: the withdrawal worker stopped (see the service's "
                                  "log); revokes are recorded but not withdrawn at once",
        "started_at": runtime.started_at.isoformat().replace("+00:00", "Z"),
        "commits": {name: {"transactions": c.batches, "items": c.items,
                           "seconds": round(c.seconds, 3)}
                    for name, c in (("ledger", ledger), ("access_log", access))}})


def entry_json(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "logged_at": item["logged_at"].isoformat().replace("+00:00", "Z")}


@router.get("/access-log", tags=["access log"], summary="The access log, paged by after_seq")
def read_access_log(request: Request, after_seq: int = Query(0, ge=0),
                    limit: int = Query(1000, ge=1, le=10_000),
                    since: str | None = Query(None, description="ISO-8601 with zone"),
                    _: Principal = Depends(require(Permission.ACCESS_LOG_READ))) -> dict[str, Any]:
    from pipelines.service.routes_consent import query_time

    when = query_time(since, "since")
    found = runtime_of(request).access.read(
        lambda con: access_log.entries(con, after_seq=after_seq, limit=limit, since=when))
    return {"entries": [entry_json(e) for e in found],
            "next_after_seq": found[-1]["seq"] if len(found) == limit else None}


@router.get("/access-log/verify", tags=["access log"],
            summary="Recompute the access log's chain (200 with the head when intact)")
def verify_access_log(request: Request,
                      _: Principal = Depends(require(Permission.ACCESS_LOG_READ))) -> dict[str, Any]:
    seq, digest = runtime_of(request).access.read(access_log.verify)
    return {"intact": True, "head": {"seq": seq, "hash": digest}}


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    role: str  # checked by tokens.check_role: a 422 that names the issuable roles


def token_json(record: tokens.TokenRecord) -> dict[str, Any]:
    return {"name": record.name, "role": record.role.value,
            "created_at": record.created_at.isoformat().replace("+00:00", "Z"),
            "revoked_at": record.revoked_at.isoformat().replace("+00:00", "Z")
            if record.revoked_at else None}


def _token_error(exc: TokenError, field: str) -> ApiError:
    missing = str(exc).startswith("no token named")
    exists = "exists already" in str(exc)
    return ApiError(404 if missing else 409 if exists else 422, "token", str(exc), field)


@router.post("/tokens", tags=["tokens"], status_code=201,
             summary="Make a token (shown once in the answer, stored hashed)")
async def create_token(request: Request, body: TokenIn,
                       _: Principal = Depends(require(Permission.TOKENS_MANAGE))) -> JSONResponse:
    try:
        role = tokens.check_role(body.role)
    except TokenError as exc:
        raise _token_error(exc, "role") from None
    try:
        tokens.check_name(body.name)
    except TokenError as exc:
        raise _token_error(exc, "name") from None
    access = runtime_of(request).access
    try:
        token, record = await runtime_of(request).access_commits.submit(
            lambda con: tokens.create(con, body.name, role.value))
    except TokenError as exc:
        raise _token_error(exc, "name") from None
    access.tokens[tokens.digest(token)] = record
    return JSONResponse(status_code=201, content={"token": token, **token_json(record)})


@router.get("/tokens", tags=["tokens"], summary="Every token (never the token itself)")
def list_tokens(request: Request,
                _: Principal = Depends(require(Permission.TOKENS_MANAGE))) -> list[dict[str, Any]]:
    return [token_json(r) for r in runtime_of(request).access.read(tokens.listing)]


@router.delete("/tokens/{name}", tags=["tokens"], summary="Revoke a token at once")
async def revoke_token(request: Request, name: str,
                       _: Principal = Depends(require(Permission.TOKENS_MANAGE))) -> dict[str, Any]:
    access = runtime_of(request).access
    try:
        record = await runtime_of(request).access_commits.submit(
            lambda con: tokens.revoke(con, name))
    except TokenError as exc:
        raise _token_error(exc, "name") from None
    for digest, held in list(access.tokens.items()):
        if held.name == name:
            del access.tokens[digest]
    return token_json(record)
