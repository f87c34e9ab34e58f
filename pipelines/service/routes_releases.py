"""Releases, withdrawal, erasure records and the reconcile over HTTP.

The same plain functions as `consentgen release list|show|withdraw`, `consentgen consent
erasure` and `consentgen reconcile`, run in the thread pool on the service's own ledger
connection (the service holds the file: nothing here opens it). A subject's withdrawal is
an operator's revoke appended through the group commit, then that subject's reconcile at
once, in the request: the answer says what was withdrawn. A reconcile's answer names
subjects only to roles that may read subject-level consent (a data engineer runs it but
sees counts); the access log records every subject a request touched either way.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from consent import Action, ConsentEvent, Head
from consent.events import describe_validation_error
from consent.state import OPERATOR_WITHDRAWAL_SOURCE
from consentgen.errors import ConsentgenError, UnknownSubjectError
from pipelines.catalog import Catalog, Release, ReleaseImage, Withdrawal
from pipelines.service.auth import require, runtime_of, touched
from pipelines.service.http_errors import ApiError
from pipelines.service.purposes import check_purposes
from pipelines.service.roles import Permission, allows
from pipelines.service.routes_consent import query_purpose, path_subject, event_json, head_json
from pipelines.service.runtime import Principal, ServiceRuntime
from pipelines.settings import BuildConfig

router = APIRouter(tags=["releases"])

LATEST_ALIAS = "latest"
MAX_IMAGE_ID = 256
MAX_MAX_IMAGES = 1_000_000


class WithdrawRequest(BaseModel):
    """Exactly one of `subject_id` (an operator's revoke on the subject's behalf, then
    their images withdrawn) or `image` (one public image id, taken down everywhere)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"subject_id": "s001", "reason": "erasure request 2026-17"},
                     {"image": "3f9c2a...", "reason": "look-alike complaint"}]})

    subject_id: str | None = None
    image: str | None = Field(None, description="a public image id (release manifest)")
    reason: str | None = Field(None, max_length=1000,
                               description="why: kept in the catalog, never published")
    purpose: str | None = Field(None, description="purpose to revoke (default the "
                                "deployment's; subject only)")
    actor: str | None = Field(None, max_length=256, description="who asks (default token:NAME)")


def _config(runtime: ServiceRuntime, *, strict: bool = False) -> BuildConfig:
    """The home's build settings; leniently (a typo never stops a withdrawal or a read)
    unless `strict` (a subject's revoke defaults to the purpose only a valid file names)."""
    from pipelines.buildfile import load_config, load_config_leniently

    if strict:
        return load_config(None, home=runtime.home)
    return load_config_leniently(runtime.home)[0]


def _card_paths(release_path: str, home: Any) -> dict[str, str | None]:
    from pipelines.card.render import CARD_JSON, HTML_FILE, MARKDOWN_FILE

    return {kind: (f"{release_path}/{name}" if (home / release_path / name).is_file() else None)
            for kind, name in (("html", HTML_FILE), ("markdown", MARKDOWN_FILE),
                               ("model", CARD_JSON))}


def _summary(release: Release, *, withdrawn: int, latest: bool, home: Any) -> dict[str, Any]:
    return {
        "version": release.version, "status": release.status,
        "created_at": release.created_at.isoformat().replace("+00:00", "Z"),
        "n_images": release.n_images, "withdrawn": withdrawn,
        "ledger_head": head_json(Head(release.head_seq, release.head_hash)),
        "snapshot_id": release.snapshot_id, "path": release.release_path,
        "data_card": _card_paths(release.release_path, home)["html"], "latest": latest,
    }


@router.get("/v1/releases", summary="Every release: status, images, consent head, data card")
def list_releases(request: Request,
                  _: Principal = Depends(require(Permission.RELEASES_READ))) -> list[dict[str, Any]]:
    from pipelines.steps.release import latest_version
    from pipelines.catalog.lineage import releases, withdrawn_per_version

    home = runtime_of(request).home
    catalog = Catalog(home)
    withdrawn, latest = withdrawn_per_version(catalog), latest_version(home)
    return [_summary(r, withdrawn=withdrawn.get(r.version, 0), latest=r.version == latest, home=home)
            for r in releases(catalog)]


@router.get("/v1/releases/{version}", summary="One release (vNNNN or latest): what it holds")
def show_release(request: Request, version: str,
                 _: Principal = Depends(require(Permission.RELEASES_READ))) -> dict[str, Any]:
    from pipelines.catalog.lineage import withdrawn_per_version
    from pipelines.steps.release import is_version_name, latest_version, releases_root
    from pipelines.steps.withdrawal import withdrawn_ids

    home = runtime_of(request).home
    latest = latest_version(home)
    if version == LATEST_ALIAS:
        if latest is None:
            raise ApiError(404, "unknown_release", "no release is published yet (no LATEST)",
                           "version")
        version = latest
    elif not is_version_name(version):
        raise ApiError(422, "invalid_request", f"version {version!r} must be vNNNN or "
                       f"{LATEST_ALIAS}", "version")
    catalog = Catalog(home)
    found = catalog.select(Release, "WHERE version = ?", [version])
    if not found:
        raise ApiError(404, "unknown_release", f"no release {version}", "version")
    release = found[0]
    folder = releases_root(home) / version
    images = catalog.select(ReleaseImage, "WHERE version = ?", [version])
    withdrawn = withdrawn_per_version(catalog).get(version, 0)
    return {
        **_summary(release, withdrawn=withdrawn, latest=version == latest, home=home),
        "folder_present": folder.is_dir(),
        "images": {"published": release.n_images,
                   "present": sum((folder / i.file_name).exists() for i in images),
                   "withdrawn": withdrawn, "listed_withdrawn": len(withdrawn_ids(catalog, version))},
        "card": _card_paths(release.release_path, home),
        "withdrawn_list": f"{release.release_path}/WITHDRAWN",
        "inputs_digest": release.inputs_digest,
    }


@router.post("/v1/releases/withdraw", summary="Withdraw a subject (operator's revoke) or one "
             "image from every release, now")
def withdraw(request: Request, body: WithdrawRequest,
             principal: Principal = Depends(require(Permission.RELEASES_WITHDRAW))) -> dict[str, Any]:
    if (body.subject_id is None) == (body.image is None):
        both = body.subject_id is not None
        raise ApiError(422, "invalid_request", "give exactly one of subject_id or image"
                       + (", not both" if both else ""), "image" if both else "subject_id")
    runtime = runtime_of(request)
    if body.image is not None:
        if body.purpose is not None:
            raise ApiError(422, "invalid_request", "purpose: only a subject's withdrawal "
                           "revokes a purpose", "purpose")
        return _withdraw_image(runtime, _image_id(body.image), body.reason)
    subject = path_subject(body.subject_id)
    touched(request, subject)
    return _withdraw_subject(runtime, subject, body, principal)


def _image_id(value: str) -> str:
    if not value or value != value.strip() or len(value) > MAX_IMAGE_ID or any(
            unicodedata.category(ch).startswith("C") for ch in value):
        raise ApiError(422, "invalid_request", f"image {value[:80]!r} is not an image id (visible "
                       f"text, at most {MAX_IMAGE_ID} characters)", "image")
    return value


def _withdraw_image(runtime: ServiceRuntime, image: str, reason: str | None) -> dict[str, Any]:
    from pipelines.catalog.lineage import release_images_by_id
    from pipelines.steps.withdrawal import withdraw_image

    catalog = Catalog(runtime.home)
    if not release_images_by_id(catalog, image):
        raise ApiError(404, "unknown_image", f"no published image {image!r}", "image")
    out = withdraw_image(catalog, image, _config(runtime), note=reason)
    return {"image": image, "withdrawn": out.withdrawn,
            "count": sum(map(len, out.withdrawn.values())), "banned": out.banned,
            "missing_files": out.missing_files, "refreshed": out.refreshed,
            "problems": out.problems}


def _withdraw_subject(runtime: ServiceRuntime, subject: str, body: WithdrawRequest,
                      principal: Principal) -> dict[str, Any]:
    from pipelines.steps.reconcile import reconcile

    catalog = Catalog(runtime.home)
    ledger = runtime.ledger
    if not catalog.sources(subject_id=subject) and not ledger.events(subject_id=subject, limit=1):
        raise ApiError(404, "unknown_subject", f"no subject {subject!r} in the catalog or the "
                       "ledger", "subject_id")
    purpose = query_purpose(body.purpose) if body.purpose is not None else _config(
        runtime, strict=True).purpose
    try:
        event = ConsentEvent(subject_id=subject, purpose=purpose, action=Action.REVOKE,
                             source=OPERATOR_WITHDRAWAL_SOURCE,
                             actor=body.actor or f"token:{principal.name}")
    except ValidationError as exc:  # the actor: the only field left to the caller unchecked
        raise ApiError(422, "invalid_request", describe_validation_error(exc), "actor") from None
    check_purposes(runtime, [event])  # an undeclared purpose only when on record
    stored = ledger.append_many([event]).event  # through the group commit (the loop's)
    try:
        report = reconcile(catalog, ledger, _config(runtime), subject_id=subject, note=body.reason)
    except ConsentgenError as exc:
        runtime.withdraw_soon(subject)  # tried again now, and by every reconcile after
        raise ApiError(503, "withdrawal_failed", f"the revoke is recorded (#{stored.seq}), but "
                       f"withdrawing at once failed ({exc}); it is retried", None,
                       event=event_json(stored)) from None
    return {"subject_id": subject, "event": event_json(stored), "withdrawn": report.withdrawn,
            "count": report.count, "stale_shards": report.stale_shards, "line": report.line(),
            "reconcile": report.model_dump(mode="json")}


@router.get("/v1/consent/subjects/{subject_id}/erasure",
            summary="The record of a subject's erasure: withdrawn, erased, what remains and why")
def erasure(request: Request, subject_id: str,
            _: Principal = Depends(require(Permission.ERASURE_READ))) -> dict[str, Any]:
    from pipelines.steps.erasure_record import erasure_record

    runtime = runtime_of(request)
    subject = path_subject(subject_id)
    touched(request, subject)
    try:
        record = erasure_record(Catalog(runtime.home), runtime.ledger, _config(runtime), subject)
    except UnknownSubjectError as exc:
        raise ApiError(404, "unknown_subject", str(exc), "subject_id") from None
    return record.model_dump(mode="json")


@router.post("/v1/reconcile", summary="One reconcile pass (no rebuild): withdraw what consent "
             "no longer covers, erase what it ended, name the shards to rebuild")
def run_reconcile(request: Request,
                  max_images: int = Query(10_000, ge=1, le=MAX_MAX_IMAGES,
                                          description="images withdrawn in this pass"),
                  principal: Principal = Depends(require(Permission.RECONCILE_RUN))) -> dict[str, Any]:
    from pipelines.steps.reconcile import reconcile

    runtime = runtime_of(request)
    catalog = Catalog(runtime.home)
    report = reconcile(catalog, runtime.ledger, _config(runtime), max_images=max_images)
    erased = report.erasure.subjects if report.erasure else []
    subjects = sorted({*erased, *_withdrawn_subjects(catalog, report.withdrawn)})
    touched(request, *subjects)
    out = report.model_dump(mode="json")
    if not allows(principal.role, Permission.CONSENT_READ) and out.get("erasure"):
        out["erasure"]["subjects"] = []
        out["erasure"]["subjects_hidden"] = len(erased)
    return out


def _withdrawn_subjects(catalog: Catalog, withdrawn: dict[str, list[str]]) -> list[str]:
    """The subjects a pass withdrew images for (its catalog rows name them)."""
    keys = [f"{v}/{i}" for v, ids in withdrawn.items() for i in ids]
    if not keys:
        return []
    rows = catalog.select(Withdrawal, "WHERE list_contains(?, version || '/' || image_id)", [keys])
    return sorted({r.subject_id for r in rows if r.subject_id})
