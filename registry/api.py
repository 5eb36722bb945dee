"""The registry's HTTP API, compatible with the official MCP Registry API (2025-12-01), plus our extensions.

Official (served under `/v0.1` and its alias `/v0`):
    GET   /servers                                      list (cursor, limit, search, updated_since, version)
    GET   /servers/{name}/versions                      every version of one server
    GET   /servers/{name}/versions/{version|latest}     one version
    PATCH /servers/{name}/versions/{version}/status     active | deprecated | deleted (one version)
    PATCH /servers/{name}/status                        the same for every version, all or nothing
    POST  /publish                                      publish a server.json (pending review; `?draft=true`)
Extensions (under `/v0.1/x/portcullis`):
    POST  /validate                                     check a server.json without publishing
    POST  /servers/{name}/versions/{version}/reviews    sign off a required review (approve | reject)
    POST  /servers/{name}/versions/{version}/transitions  submit | approve | reject | deprecate | restore | retire
    GET   /servers/{name}/versions/{version}/history    status events and reviews
    GET   /me/servers                                   the servers the caller's client may use, with their tools
    GET   /catalog                                      the catalog snapshot (service credential; ETag)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from portcullis_contracts.http_input import BodyTooLarge, bearer_matches, read_limited
from portcullis_contracts.json_input import InvalidJson, parse_json
from registry import service
from registry.authz import AuthzClient
from registry.errors import InvalidRequest, NotFound, PayloadTooLarge, RegistryError, Unauthenticated
from registry.identity import RegistryCaller, RegistryTokenVerifier
from registry.lifecycle import official_action
from registry.models import LIFECYCLE
from registry.settings import RegistrySettings
from registry.snapshot import SnapshotCache
from registry.validation import validate_server_json

__all__ = ["Registry", "build_router", "error_response"]

EXTENSION = "/x/portcullis"
# A server.json nests about eight levels; deeper input only feeds the recursive schema validator.
_MAX_JSON_DEPTH = 64


def error_response(exc: RegistryError) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.message, **exc.details}
    headers = {"WWW-Authenticate": 'Bearer realm="portcullis-registry"'} if exc.status == 401 else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


class Registry:
    """The collaborators every route needs, built once by `create_app`."""

    def __init__(
        self,
        *,
        settings: RegistrySettings,
        engine: Engine,
        authz: AuthzClient,
        verifier: RegistryTokenVerifier,
    ):
        self.settings = settings
        self.engine = engine
        self.writer = engine.execution_options(immediate=True)  # SQLite: BEGIN IMMEDIATE for writes
        self.authz = authz
        self.verifier = verifier
        self.snapshots = SnapshotCache(engine)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One transaction: committed when the block succeeds, rolled back on any error."""
        with Session(self.writer) as session, session.begin():
            yield session

    def caller(self, request: Request) -> RegistryCaller:
        return self.verifier.verify(request.headers.get("authorization"))

    def require_service(self, request: Request) -> None:
        if not bearer_matches(
            request.headers.get("authorization"),
            (s.get_secret_value() for s in self.settings.service_credentials.values()),
        ):
            raise Unauthenticated("a service credential is required")

    async def read_json(self, request: Request) -> Any:
        try:
            body = await read_limited(request, self.settings.max_body_bytes)
        except BodyTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        try:
            return parse_json(body, max_depth=_MAX_JSON_DEPTH)
        except InvalidJson as exc:
            raise InvalidRequest(f"request body: {exc}") from None


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest(f"{name} must be true or false", parameter=name)
    return value in ("true", "1")


def _query(request: Request, settings: RegistrySettings) -> service.ListQuery:
    params = request.query_params
    limit = settings.page_limit_default
    if "limit" in params:
        raw = params["limit"]
        if not raw.isdigit() or int(raw) < 1:
            raise InvalidRequest("limit must be a positive integer", parameter="limit")
        limit = min(int(raw), settings.page_limit_max)
    updated_since = None
    if params.get("updated_since"):
        try:
            updated_since = datetime.fromisoformat(params["updated_since"].replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequest("updated_since must be an RFC 3339 date-time", parameter="updated_since") from None
        if updated_since.tzinfo is not None:
            updated_since = updated_since.astimezone(UTC).replace(tzinfo=None)
    lifecycle: tuple[str, ...] = ()
    if params.get("lifecycle"):
        lifecycle = tuple(part for part in params["lifecycle"].split(",") if part)
        unknown = [part for part in lifecycle if part not in LIFECYCLE]
        if unknown:
            raise InvalidRequest(f"unknown lifecycle state(s): {', '.join(unknown)}", parameter="lifecycle")
    return service.ListQuery(
        limit=limit,
        cursor=params.get("cursor") or None,
        search=(params.get("search") or "").strip()[:200] or None,
        updated_since=updated_since,
        version=params.get("version") or None,
        include_deleted=_flag(request, "include_deleted"),
        lifecycle=lifecycle,
        owner_team=params.get("team") or None,
        sensitivity=params.get("sensitivity") or None,
        business_group=params.get("business_group") or None,
    )


def _server_name(name: str) -> str:
    if name.count("/") != 1:
        raise NotFound("Server not found")
    return name


def build_router(registry: Registry) -> APIRouter:
    """The API routes; mounted under `/v0.1` and `/v0`."""
    settings = registry.settings
    router = APIRouter()

    @router.get("/servers")
    def list_servers(request: Request) -> JSONResponse:
        query = _query(request, settings)
        with registry.reading() as session:
            rows, next_cursor = service.list_versions(session, query=query)
            body: dict[str, Any] = {"servers": [service.to_response(row) for row in rows]}
        metadata: dict[str, Any] = {"count": len(rows)}
        if next_cursor:
            metadata["nextCursor"] = next_cursor
        body["metadata"] = metadata
        return JSONResponse(body)

    @router.get("/servers/{server_name:path}/versions/{version}")
    def get_version(server_name: str, version: str, request: Request) -> JSONResponse:
        include_deleted = _flag(request, "include_deleted")
        with registry.reading() as session:
            row = service.find_version(
                session, name=_server_name(server_name), version=version, include_deleted=include_deleted
            )
            return JSONResponse(service.to_response(row))

    @router.get("/servers/{server_name:path}/versions")
    def get_versions(server_name: str, request: Request) -> JSONResponse:
        include_deleted = _flag(request, "include_deleted")
        with registry.reading() as session:
            rows = service.list_server_versions(
                session, name=_server_name(server_name), include_deleted=include_deleted
            )
            servers = [service.to_response(row) for row in rows]
        return JSONResponse({"servers": servers, "metadata": {"count": len(servers)}})

    @router.put("/servers/{server_name:path}/versions/{version}")
    @router.delete("/servers/{server_name:path}/versions/{version}")
    def not_implemented(server_name: str, version: str) -> JSONResponse:
        return JSONResponse(
            {"error": "published versions are immutable here: publish a new version, or PATCH its status"},
            status_code=501,
        )

    # Write routes read the body on the event loop, then verify, decide and write on a worker thread: the
    # database and the AuthZEN call are blocking and must not stall other requests.

    def change_version(
        request: Request, server_name: str, version: str, apply: Callable[[RegistryCaller, Session, Any], object]
    ) -> JSONResponse:
        caller = registry.caller(request)
        with registry.writing() as session:
            row = service.find_version(session, name=_server_name(server_name), version=version, lock=True)
            apply(caller, session, row)
            session.flush()
            return JSONResponse(service.to_response(row))

    @router.patch("/servers/{server_name:path}/versions/{version}/status")
    async def patch_version_status(server_name: str, version: str, request: Request) -> JSONResponse:
        status, message = _status_body(await registry.read_json(request))

        def apply(caller: RegistryCaller, session: Session, row: Any) -> object:
            return _apply_official(registry, session, row, status, message, caller, strict=True)

        return await run_in_threadpool(change_version, request, server_name, version, apply)

    @router.patch("/servers/{server_name:path}/status")
    async def patch_server_status(server_name: str, request: Request) -> JSONResponse:
        status, message = _status_body(await registry.read_json(request))

        def change_all() -> JSONResponse:
            caller = registry.caller(request)
            with registry.writing() as session:
                rows = service.list_server_versions(session, name=_server_name(server_name), include_deleted=True)
                updated = [row for row in rows if _apply_official(registry, session, row, status, message, caller)]
                session.flush()
                servers = [service.to_response(row) for row in updated]
                return JSONResponse({"updatedCount": len(updated), "servers": servers})

        return await run_in_threadpool(change_all)

    @router.post("/publish")
    async def publish(request: Request) -> JSONResponse:
        document = await registry.read_json(request)
        draft = _flag(request, "draft")

        def store() -> JSONResponse:
            caller = registry.caller(request)
            valid = validate_server_json(document)
            with registry.writing() as session:
                row = service.publish(session, valid=valid, caller=caller, authz=registry.authz, draft=draft)
                return JSONResponse(service.to_response(row))

        return await run_in_threadpool(store)

    @router.post(f"{EXTENSION}/validate")
    async def validate(request: Request) -> JSONResponse:
        valid = validate_server_json(await registry.read_json(request))
        return JSONResponse({"valid": True, "name": valid.name, "version": valid.version, "route": valid.route})

    @router.post(f"{EXTENSION}/servers/{{server_name:path}}/versions/{{version}}/reviews")
    async def review(server_name: str, version: str, request: Request) -> JSONResponse:
        body = _object(await registry.read_json(request))
        review, decision = _text(body, "review"), _text(body, "decision")
        reason = _text(body, "reason", required=False)

        def apply(caller: RegistryCaller, session: Session, row: Any) -> object:
            return service.sign_off(
                session, row=row, review=review, decision=decision, reason=reason, caller=caller,
                authz=registry.authz, required_reviews=settings.reviews,
            )  # fmt: skip

        return await run_in_threadpool(change_version, request, server_name, version, apply)

    @router.post(f"{EXTENSION}/servers/{{server_name:path}}/versions/{{version}}/transitions")
    async def transitions(server_name: str, version: str, request: Request) -> JSONResponse:
        body = _object(await registry.read_json(request))
        action, reason = _text(body, "action"), _text(body, "reason", required=False)

        def apply(caller: RegistryCaller, session: Session, row: Any) -> object:
            return service.transition(
                session, row=row, action=action, reason=reason, caller=caller,
                authz=registry.authz, required_reviews=settings.reviews,
            )  # fmt: skip

        return await run_in_threadpool(change_version, request, server_name, version, apply)

    @router.get(f"{EXTENSION}/servers/{{server_name:path}}/versions/{{version}}/history")
    def version_history(server_name: str, version: str) -> JSONResponse:
        with registry.reading() as session:
            row = service.find_version(session, name=_server_name(server_name), version=version)
            events, reviews = service.history(session, row=row)
            missing = service.missing_reviews(session, row=row, required=settings.reviews)
        return JSONResponse(
            {
                "lifecycle": row.lifecycle,
                "events": [
                    {"from": e.from_status or None, "to": e.to_status, "actor": e.actor, "reason": e.reason,
                     "at": service.isotime(e.at)}
                    for e in events
                ],
                "reviews": [
                    {"review": r.review, "decision": r.decision, "reviewer": r.reviewer, "group": r.reviewer_group,
                     "reason": r.reason, "at": service.isotime(r.at)}
                    for r in reviews
                ],
                "required_reviews": settings.reviews,
                "missing_reviews": missing,
            }
        )  # fmt: skip

    @router.get(f"{EXTENSION}/me/servers")
    def my_servers(request: Request) -> JSONResponse:
        caller = registry.caller(request)
        query = _query(request, settings)
        listing = service.usable_servers(
            registry.snapshots.get(), caller=caller, authz=registry.authz, gateway_url=settings.gateway_url,
            limit=query.limit, cursor=query.cursor,
        )  # fmt: skip
        return JSONResponse(listing)

    @router.get(f"{EXTENSION}/catalog")
    def catalog(request: Request) -> Response:
        registry.require_service(request)
        etag_of: Callable[[str], str] = lambda revision: f'"{revision}"'  # noqa: E731
        presented = request.headers.get("if-none-match")
        revision = registry.snapshots.revision()
        if presented is not None and presented.strip() == etag_of(revision):
            return Response(status_code=304, headers={"ETag": etag_of(revision)})
        snapshot = registry.snapshots.get()
        return JSONResponse(
            snapshot.document(), headers={"ETag": etag_of(snapshot.revision), "Cache-Control": "no-cache"}
        )

    return router


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise InvalidRequest(f"{key} is required and must be a string", field=key)
    return value[:500]


def _status_body(body: Any) -> tuple[str, str | None]:
    body = _object(body)
    status = body.get("status")
    if status not in ("active", "deprecated", "deleted"):
        raise InvalidRequest("Invalid status value: expected active, deprecated or deleted")
    message = body.get("statusMessage")
    if message is not None and (not isinstance(message, str) or len(message) > 500):
        raise InvalidRequest("statusMessage must be a string of at most 500 characters")
    return status, message


def _apply_official(
    registry: Registry,
    session: Session,
    row: Any,
    status: str,
    message: str | None,
    caller: RegistryCaller,
    *,
    strict: bool = False,
) -> bool:
    """Apply an official status to one version; False when nothing changes (strict: that is a 400)."""
    try:
        action = official_action(row.lifecycle, status)
    except ValueError as exc:
        raise InvalidRequest(f"{row.server_name} {row.version}: {exc}") from None
    if action is None:
        if strict:
            raise InvalidRequest(f"No changes to apply: status is already {status}")
        return False
    service.transition(
        session,
        row=row,
        action=action,
        reason=message or f"status set to {status}",
        caller=caller,
        authz=registry.authz,
        required_reviews=registry.settings.reviews,
    )
    service.set_status_message(row, message)
    return True
