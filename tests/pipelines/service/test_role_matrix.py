"""Every endpoint × every role (and no token), against a real server on a published home.

The table below is the issue's role definitions written out by hand, not read from
`pipelines.service.roles`: a grant added there by mistake fails here. Allowed calls must
get their endpoint's own answer (200, 201, or the 404 a made-up name gets once past the
role check); refused ones 403; no token 401. The OpenAPI document must list exactly these
endpoints, so a new one without a row here fails too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.pipelines.service.server import Service, serving
from tests.pipelines.steps.published import publish_rows

ROLES = ("consent-writer", "consent-officer", "data-engineer", "auditor", "reader")
WRITER, OFFICER, ENGINEER, AUDITOR, READER = ROLES
P = "synthetic-training"
_ids = itertools.count()


def _event() -> dict[str, Any]:
    return {"subject_id": "A", "purpose": P, "action": "grant", "event_id": f"m-{next(_ids)}",
            "effective_at": "2026-01-02T00:00:00Z"}


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # the OpenAPI path
    url: str  # what is called
    allowed: frozenset[str]
    ok: int  # the status an allowed role gets
    body: Any = None
    json_body: Any = field(default=None)


def _rows() -> list[Row]:
    consent_readers = frozenset({OFFICER, AUDITOR})
    verifiers = frozenset({OFFICER, ENGINEER, AUDITOR})
    release_readers = frozenset({OFFICER, ENGINEER, AUDITOR, READER})
    writers = frozenset({WRITER, OFFICER})
    return [
        Row("POST", "/v1/consent/events", "/v1/consent/events", writers, 201, json_body=_event),
        Row("GET", "/v1/consent/subjects/{subject_id}", f"/v1/consent/subjects/A?purpose={P}",
            consent_readers, 200),
        Row("GET", "/v1/consent/eligible", f"/v1/consent/eligible?purpose={P}", consent_readers, 200),
        Row("GET", "/v1/consent/states", f"/v1/consent/states?purpose={P}", consent_readers, 200),
        Row("GET", "/v1/consent/events", "/v1/consent/events", consent_readers, 200),
        Row("GET", "/v1/consent/export", "/v1/consent/export?format=jsonl", consent_readers, 200),
        Row("POST", "/v1/consent/import", "/v1/consent/import", writers, 201,
            json_body=lambda: [_event()]),
        Row("GET", "/v1/consent/head", "/v1/consent/head", verifiers, 200),
        Row("GET", "/v1/consent/purposes", "/v1/consent/purposes", verifiers, 200),
        # publish_rows records made-up heads for its releases: verify the chain alone
        Row("GET", "/v1/consent/verify", "/v1/consent/verify?releases=false", verifiers, 200),
        Row("GET", "/v1/consent/subjects/{subject_id}/erasure", "/v1/consent/subjects/A/erasure",
            frozenset({OFFICER}), 200),
        Row("GET", "/v1/releases", "/v1/releases", release_readers, 200),
        Row("GET", "/v1/releases/{version}", "/v1/releases/v0001", release_readers, 200),
        Row("POST", "/v1/releases/withdraw", "/v1/releases/withdraw", frozenset({OFFICER}), 404,
            json_body=lambda: {"image": "no-such-image"}),
        Row("POST", "/v1/reconcile", "/v1/reconcile", frozenset({ENGINEER}), 200),
        Row("GET", "/v1/access-log", "/v1/access-log", frozenset({AUDITOR}), 200),
        Row("GET", "/v1/access-log/verify", "/v1/access-log/verify", frozenset({AUDITOR}), 200),
        Row("POST", "/v1/webhooks/{name}", "/v1/webhooks/no-such-webhook", writers, 404,
            json_body=lambda: {}),
        Row("POST", "/v1/tokens", "/v1/tokens", frozenset(), 201,
            json_body=lambda: {"name": f"made-{next(_ids)}", "role": READER}),
        Row("GET", "/v1/tokens", "/v1/tokens", frozenset(), 200),
        Row("DELETE", "/v1/tokens/{name}", "/v1/tokens/test-reader", frozenset(), 200),
    ]


ROWS = _rows()
UNAUTHENTICATED = {("GET", "/v1/health")}


@pytest.fixture(scope="module")
def published_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home: Path = tmp_path_factory.mktemp("matrix") / "home"
    home.mkdir()
    publish_rows(home)
    with serving(home) as service:
        for role in ROLES:
            service.token(role)
        yield service


def _call(service: Service, row: Row, token: str | None) -> int:
    body = row.json_body() if callable(row.json_body) else row.json_body
    with service.client(token) as http:
        return http.request(row.method, row.url, json=body).status_code


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.method} {r.path}")
def test_each_role_gets_exactly_what_it_may(published_service: Service, row: Row) -> None:
    got = {role: _call(published_service, row, published_service.token(role)) for role in ROLES}
    got["(no token)"] = _call(published_service, row, None)
    expected = {role: (row.ok if role in row.allowed else 403) for role in ROLES}
    expected["(no token)"] = 401
    assert got == expected


def test_the_owner_token_may_do_everything(published_service: Service) -> None:
    for row in ROWS:
        if row.method == "DELETE":
            continue  # revoking the reader's token would spoil the other rows
        assert _call(published_service, row, published_service.owner_token) == row.ok, row


def test_the_matrix_covers_every_endpoint_of_the_api(published_service: Service) -> None:
    with published_service.client() as http:
        spec = http.get("/openapi.json").json()
    served = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert served == {(r.method, r.path) for r in ROWS} | UNAUTHENTICATED


def test_health_answers_without_a_token(published_service: Service) -> None:
    with published_service.client() as http:
        assert http.get("/v1/health").status_code == 200
