"""The FastAPI app of `consentgen serve`: routers, error shape, access log, lifespan.

`create_app(home)` is all a test or an ASGI server needs; the lifespan opens the ledger and
`access.duckdb` for writing (the service is their one writer while it runs) unless the
caller did, and starts and stops the group commits. `service.json`, for the home's command
line, is `pipelines.service.serve`'s to write, once the port is bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from pipelines.service import http_errors
from pipelines.service.middleware import AccessLogMiddleware
from pipelines.service.runtime import ServiceRuntime
from pipelines.service.settings import ServiceSettings

API_VERSION = "1"


def open_runtime(home: Path, settings: ServiceSettings) -> ServiceRuntime:
    """Open the files and the identity provider's keys: what can fail at start, done before
    uvicorn runs so that a failure is one line, not a lifespan traceback."""
    runtime = ServiceRuntime.open(home, settings)
    if settings.jwks_file is not None:
        try:
            from pipelines.service.jwt_auth import JwtVerifier

            runtime.jwt = JwtVerifier.from_settings(settings)
        except BaseException:
            runtime.close()
            raise
    return runtime


def create_app(home: Path, settings: ServiceSettings | None = None, *,
               runtime: ServiceRuntime | None = None) -> FastAPI:
    """The service over data home `home`. A `runtime` opened by the caller is the caller's
    to close; else the lifespan opens one."""
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        held = runtime or await asyncio.to_thread(open_runtime, home, settings)
        held.start(asyncio.get_running_loop())
        app.state.runtime = held
        try:
            yield
        finally:
            await held.stop()
            if owned:
                await asyncio.to_thread(held.close)

    app = FastAPI(
        title="consentgen consent service",
        version=API_VERSION,
        summary="The consent ledger over HTTP: append grants and revokes, read consent, "
                "audit every access.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    http_errors.install(app)
    from pipelines.service import routes_admin, routes_consent

    app.include_router(routes_admin.router)
    app.include_router(routes_consent.router)
    for name in ("routes_releases", "routes_exchange", "webhooks"):
        module = _optional(name)
        if module is not None:
            app.include_router(module.router)
    app.add_middleware(AccessLogMiddleware, runtime_of=lambda: app.state.runtime)
    _publish_event_schema(app)
    return app


def _optional(name: str):  # noqa: ANN202 - a router module, while they are being written
    import importlib

    try:
        return importlib.import_module(f"pipelines.service.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"pipelines.service.{name}":
            raise
        return None


def _publish_event_schema(app: FastAPI) -> None:
    """Put `ConsentEvent` into the OpenAPI components (its body is parsed by hand, for
    one-line errors that name the field, so FastAPI does not see it)."""
    from consent import ConsentEvent

    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {}).setdefault("schemas", {})["ConsentEvent"] = (
                ConsentEvent.model_json_schema(ref_template="#/components/schemas/{model}"))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
