"""The HTTP face of authz_service: AuthZEN, JWKS and discovery metadata, health and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from authz_service.authzen import AuthzenError, authzen_configuration, build_router
from authz_service.identity.routes import build_identity_router
from authz_service.runtime import Runtime

__all__ = ["create_app"]


def create_app(runtime: Runtime) -> FastAPI:
    """Build the HTTP application over one process's runtime."""
    settings = runtime.settings
    app = FastAPI(title="Portcullis authorization service", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = runtime

    @app.exception_handler(AuthzenError)
    async def _authzen_error(_: Request, exc: AuthzenError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        policy = runtime.engine.current
        ready = policy is not None and runtime.catalog.loaded
        body: dict[str, Any] = {
            "status": "ready" if ready else "not_ready",
            "policy_revision": policy.revision if policy else None,
            "catalog_revision": runtime.catalog.current().revision,
        }
        # A rejected reload keeps the previous revision deciding (still ready) but must be visible.
        if runtime.engine.last_error is not None:
            body["policy_error"] = str(runtime.engine.last_error)
        if runtime.catalog.last_error is not None:
            body["catalog_error"] = str(runtime.catalog.last_error)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(runtime.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/.well-known/jwks.json")
    async def jwks() -> JSONResponse:
        # Every published key, pending ones included: caches (Envoy's: 300 s) hold a key before it signs.
        return JSONResponse(runtime.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})

    @app.get("/.well-known/authzen-configuration")
    async def configuration() -> dict[str, str]:
        return authzen_configuration(settings.issuer.rstrip("/"))

    app.include_router(build_router(settings, runtime.decider))
    if runtime.identity is not None:
        app.include_router(build_identity_router(runtime.identity, max_body_bytes=settings.max_body_bytes))
    return app
