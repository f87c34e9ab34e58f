"""The `[service]` table of consentgen.toml: where the service listens, its limits, the
identity provider it trusts, and the webhooks of the consent-management platforms."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_PORT = 8470
ACTIONS = ("grant", "revoke")
EVENT_FIELDS = ("subject_id", "purpose", "action", "event_id", "effective_at", "expires_at",
                "actor", "source")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookSettings(_Section):
    """One CMP's webhook: its secret, and how its payload maps onto consent events.

    The mapping is data, not code, so that connecting another platform is a table in the
    build file: paths are dotted (`consents`, `dataSubject.id`, `purposes.0.id`).
    """

    secret_env: str = Field("", description="environment variable (of the service) holding "
                            "the HMAC secret")
    secret_file: Path | None = Field(None, description="file holding the HMAC secret "
                                     "(read from the build file's folder when relative)")
    events: str = Field("", description="dotted path to the list of events in the payload "
                        "(\"\" = the payload is one event)")
    fields: dict[str, str] = Field(
        default_factory=dict, description="event field -> dotted path in each payload event "
        "(subject_id, purpose, action, event_id, effective_at, expires_at, actor, source); "
        "a field not named is read from the key of its own name")
    actions: dict[str, str] = Field(
        default_factory=dict, description="the CMP's action value -> grant | revoke "
        "(true/false and numbers as written in JSON: \"true\", \"1\")")
    purposes: dict[str, str] = Field(
        default_factory=dict, description="the CMP's purpose id -> a declared purpose "
        "(an id not named is taken as it is)")
    purpose: str = Field("", description="purpose of events whose payload names none")
    source: str = Field("", description="source of events whose payload names none "
                        "(default webhook:NAME)")

    @field_validator("actions")
    @classmethod
    def _actions(cls, value: dict[str, str]) -> dict[str, str]:
        for key, action in value.items():
            if action not in ACTIONS:
                raise ValueError(f"actions.{key}: {action!r} must be grant or revoke")
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        for key, path in value.items():
            if key not in EVENT_FIELDS:
                raise ValueError(f"fields.{key}: not an event field (use {', '.join(EVENT_FIELDS)})")
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"fields.{key}: {path!r} is not a dotted path (a.b.0.c)")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: str) -> str:
        if value and any(not part for part in value.split(".")):
            raise ValueError(f"events: {value!r} is not a dotted path (a.b.0.c)")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookSettings:
        if self.secret_env and self.secret_file is not None:
            raise ValueError("give secret_env or secret_file, not both")
        return self


class ServiceSettings(_Section):
    """`consentgen serve`'s settings; command-line flags override host and port."""

    host: str = Field("127.0.0.1", description="address the service listens on")
    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="its TCP port")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024,
                                description="largest request body accepted (413 above)")
    max_events_per_request: int = Field(10_000, ge=1, le=1_000_000,
                                        description="events in one POST /v1/consent/events")
    open_wait_s: float = Field(30.0, gt=0, description="how long start-up waits for the "
                               "ledger while a CLI command holds it")
    withdraw_on_revoke: bool = Field(True, description="withdraw a revoked subject's images "
                                     "at once (else the next reconcile does)")
    webhook_tolerance_s: int = Field(300, ge=1, le=3600, description="a webhook's timestamp "
                                     "older (or newer) than this is refused as a replay")
    jwks_file: Path | None = Field(None, description="JWKS (JSON) of the identity provider "
                                   "whose JWTs are accepted as bearer tokens; none = tokens only")
    jwt_issuer: str = Field("", description="required `iss` of accepted JWTs")
    jwt_audience: str = Field("consentgen", description="required `aud` of accepted JWTs")
    jwt_role_claim: str = Field("consentgen_role", description="claim holding the role")
    webhooks: dict[str, WebhookSettings] = Field(
        default_factory=dict, description="CMP webhooks by name: POST /v1/webhooks/NAME")

    @field_validator("webhooks")
    @classmethod
    def _names(cls, value: dict[str, WebhookSettings]) -> dict[str, WebhookSettings]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"webhook name {name!r}: lower-case letters, digits, _ and -")
        return value
