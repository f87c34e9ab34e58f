"""Who may do what: the service's roles and the permission each endpoint asks for.

Least privilege (DESIGN invariant 7): a consent-management platform's key can append
consent and nothing else; a data engineer sees releases but no subject's consent; an
auditor reads everything and changes nothing. `owner` is the home's own command line
(the token the service writes into the data home for it), never issued to anyone.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CONSENT_WRITER = "consent-writer"
    CONSENT_OFFICER = "consent-officer"
    DATA_ENGINEER = "data-engineer"
    AUDITOR = "auditor"
    READER = "reader"
    OWNER = "owner"


ISSUABLE = tuple(r for r in Role if r is not Role.OWNER)
"""The roles `consentgen token create --role` gives out."""


class Permission(StrEnum):
    CONSENT_WRITE = "consent:write"  # append events, import
    WEBHOOK_CALL = "webhook:call"
    CONSENT_READ = "consent:read"  # subject-level: state, eligible, the event log, export
    LEDGER_VERIFY = "ledger:verify"  # the chain's head and integrity: no subject in it
    RELEASES_READ = "releases:read"
    RELEASES_WITHDRAW = "releases:withdraw"
    ERASURE_READ = "erasure:read"
    RECONCILE_RUN = "reconcile:run"
    ACCESS_LOG_READ = "access-log:read"
    TOKENS_MANAGE = "tokens:manage"


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.CONSENT_WRITER: frozenset({Permission.CONSENT_WRITE, Permission.WEBHOOK_CALL}),
    Role.CONSENT_OFFICER: frozenset({
        Permission.CONSENT_WRITE, Permission.WEBHOOK_CALL, Permission.CONSENT_READ,
        Permission.LEDGER_VERIFY, Permission.RELEASES_READ, Permission.RELEASES_WITHDRAW,
        Permission.ERASURE_READ,
    }),
    Role.DATA_ENGINEER: frozenset({
        Permission.LEDGER_VERIFY, Permission.RELEASES_READ, Permission.RECONCILE_RUN,
    }),
    Role.AUDITOR: frozenset({
        Permission.CONSENT_READ, Permission.LEDGER_VERIFY, Permission.RELEASES_READ,
        Permission.ACCESS_LOG_READ,
    }),
    Role.READER: frozenset({Permission.RELEASES_READ}),
    Role.OWNER: frozenset(Permission),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in _GRANTS[role]


def roles_with(permission: Permission) -> list[Role]:
    """The roles that may, for the 403's message and the OpenAPI descriptions."""
    return [r for r in Role if permission in _GRANTS[r]]
