"""Bearer authentication and the role check, as one FastAPI dependency per permission.

No token (or an unknown or revoked one) is 401; a known token whose role may not is 403
naming the roles that may. The principal is left on the request for the access log.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipelines.service.http_errors import ApiError
from pipelines.service.roles import Permission, allows, roles_with
from pipelines.service.runtime import Principal, ServiceRuntime

_bearer = HTTPBearer(auto_error=False, description="a token from `consentgen token create`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "unauthenticated", "no bearer token (Authorization: Bearer TOKEN)",
                       headers=_CHALLENGE)
    runtime = runtime_of(request)
    token = credentials.credentials
    principal = runtime.principal_for(token)
    why = "unknown or revoked token"
    if principal is None and runtime.jwt is not None and token.count(".") == 2:
        principal, why = runtime.jwt.verify(token)  # a token's digest first: it is cheaper
    if principal is None:
        raise ApiError(401, "unauthenticated", why, headers=_CHALLENGE)
    request.state.principal = principal
    return principal


def require(permission: Permission) -> Callable[..., Principal]:
    """The dependency of an endpoint that needs `permission`."""

    async def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None
                         = Depends(_bearer)) -> Principal:  # async: no thread-pool hop per call
        principal = authenticate(request, credentials)
        if not allows(principal.role, permission):
            may = ", ".join(r.value for r in roles_with(permission))
            raise ApiError(403, "forbidden", f"role {principal.role.value} may not "
                           f"{permission.value} (roles that may: {may})")
        return principal

    dependency.__name__ = f"require_{permission.name.lower()}"
    return dependency


def touched(request: Request, *subjects: str) -> None:
    """Record the subject ids a request touched, for its access-log entry."""
    request.state.subjects = [*getattr(request.state, "subjects", []), *subjects]
