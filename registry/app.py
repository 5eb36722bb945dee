"""`create_app(settings)`: the registry's API, web UI and health endpoints over one database."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlmodel import Session, select
from starlette.exceptions import HTTPException

from portcullis_contracts.problems import validation_problems
from portcullis_contracts.revocations import RevocationFollower
from registry import service
from registry.api import Registry, build_router, error_response
from registry.authz import AuthzClient
from registry.db import make_engine, migrate
from registry.errors import RegistryError
from registry.identity import RegistryCaller, RegistryTokenVerifier
from registry.models import Server
from registry.settings import RegistrySettings
from registry.ui import build_ui
from registry.validation import validate_server_json

__all__ = ["create_app", "seed"]

logger = logging.getLogger("portcullis.registry")
SEED_KEY = "dev.portcullis/seed"
_FIRST_REVOCATIONS_SECONDS = 3.0
SEED_ACTOR = RegistryCaller(id="system:seed", client="portcullis-up")


def create_app(
    settings: RegistrySettings,
    *,
    engine: Engine | None = None,
    authz: AuthzClient | None = None,
    verifier: RegistryTokenVerifier | None = None,
) -> FastAPI:
    """Build the registry: migrate the schema, seed an empty local database, wire the routes."""
    engine = engine or make_engine(settings.database_url.get_secret_value())
    migrate(engine)
    if authz is None:
        http = httpx.Client(base_url=settings.authz_url, timeout=settings.authz_timeout_seconds)
        authz = AuthzClient(http, credential=settings.authz_credential.get_secret_value())
    revocations: RevocationFollower | None = None
    if verifier is None:
        revocations = RevocationFollower(url=settings.revocation_url, issuer=settings.issuer)
        verifier = RegistryTokenVerifier(
            issuer=settings.issuer,
            audience=settings.token_audience,
            jwks_url=settings.jwks_url,
            revoked=revocations.revoked,
        )
    registry = Registry(settings=settings, engine=engine, authz=authz, verifier=verifier)
    if settings.seed_dir is not None:
        seed(registry, settings.seed_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Follow the issuer's revocation feed while serving: a revoked token is refused within a second.
        following = asyncio.create_task(revocations.run()) if revocations is not None else None
        try:
            if revocations is not None:
                await revocations.wait_loaded(_FIRST_REVOCATIONS_SECONDS)  # else serve: tokens get 503 until loaded
            yield
        finally:
            if following is not None:
                following.cancel()
                with suppress(asyncio.CancelledError):
                    await following

    app = FastAPI(
        title="Portcullis registry", version="2025-12-01", docs_url="/docs", redoc_url=None, lifespan=lifespan
    )
    app.state.registry = registry
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET"],
        allow_headers=["Accept", "Content-Type", "If-None-Match"],
        expose_headers=["ETag"],
        max_age=3600,
    )

    @app.exception_handler(RegistryError)
    async def _registry_error(_: Request, exc: RegistryError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        message = "Not found" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = validation_problems(exc.errors(), limit=10)
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=400)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        try:
            with Session(engine) as session:
                session.execute(text("SELECT 1"))
                revision = service.catalog_revision(session)
        except Exception as exc:  # the database is down: not ready, say why without a trace
            return JSONResponse({"status": "not_ready", "error": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ready", "catalog_revision": revision})

    router = build_router(registry)
    app.include_router(router, prefix="/v0.1")
    app.include_router(router, prefix="/v0", include_in_schema=False)
    build_ui(app, registry)
    return app


def seed(registry: Registry, directory: Path) -> int:
    """Publish and set the lifecycle of every `*.json` in `directory` whose server the registry does not hold.

    A server is seeded once: later starts add only servers new to the seed (a platform upgraded with a new
    server gets it), and never touch one already there, whatever happened to it since. For the local platform
    only (refused in production by the settings): it bypasses reviews, and records that it did in every status
    event.
    """
    with registry.writing() as session:
        held = set(session.exec(select(Server.name)).all())
        count = 0
        for path in sorted(directory.glob("*.json")):
            document: dict[str, Any] = json.loads(path.read_text())
            lifecycle = str((document.get("_meta") or {}).pop(SEED_KEY, {}).get("lifecycle", "approved"))
            if document.get("name") in held:
                continue
            valid = validate_server_json(document)
            row = service.publish(session, valid=valid, caller=SEED_ACTOR, authz=_SeedAuthz(), draft=False)
            if lifecycle != row.lifecycle:
                service.record_transition(session, row, lifecycle, SEED_ACTOR.id, "seeded by the local platform")
            count += 1
        logger.info("seeded %d servers from %s", count, directory)
        return count


class _SeedAuthz(AuthzClient):
    """Seeding is not a caller's request: it is allowed by construction (and refused in production)."""

    def __init__(self) -> None:
        pass

    def evaluate(self, caller: RegistryCaller, action: str, resource: dict[str, Any]) -> Any:
        from registry.authz import Verdict

        return Verdict(True, "seed", "seed")
