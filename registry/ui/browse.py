"""The UI's browsing pages: the catalog (search, filters, cursor pagination) and one server version's page."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from registry import service
from registry.api import Registry
from registry.errors import InvalidRequest
from registry.models import LIFECYCLE
from registry.ui.pages import Pages
from registry.ui.session import SessionDep
from registry.ui.views import cards, probe_health, server_view
from registry.usage import UsageIndex

__all__ = ["browse_routes"]

_FILTERS = ("q", "team", "status", "sensitivity", "group")


def browse_routes(registry: Registry, pages: Pages, usage: UsageIndex) -> APIRouter:
    """`GET /` (the catalog) and `GET /ui/servers/{name}` (one version, its live health and usage)."""
    settings = registry.settings
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def catalog(request: Request, session: SessionDep) -> HTMLResponse:
        params = request.query_params
        filters = {key: (params.get(key) or "").strip()[:200] for key in _FILTERS}
        status = filters["status"]
        lifecycle: tuple[str, ...] = tuple(LIFECYCLE) if status == "all" else (status,) if status in LIFECYCLE else ()
        query = service.ListQuery(
            limit=settings.page_limit_default,
            cursor=params.get("cursor") or None,
            search=filters["q"] or None,
            lifecycle=lifecycle,
            owner_team=filters["team"] or None,
            sensitivity=filters["sensitivity"] or None,
            business_group=filters["group"] or None,
        )
        error = ""
        with registry.reading() as db:
            try:
                rows, next_cursor = service.list_versions(db, query=query)
            except InvalidRequest as exc:
                rows, next_cursor, error = [], None, exc.message
            facets = service.facets(db)
            counts = service.lifecycle_counts(db)
        active = {key: value for key, value in filters.items() if value}
        return pages.render(
            session, "catalog.html", status=400 if error else 200, path="/",
            cards=cards(rows), filters=filters, facets=facets, counts=counts, lifecycles=LIFECYCLE, error=error,
            next_url="/?" + urlencode({**active, "cursor": next_cursor}) if next_cursor else "",
            first_url=("/?" + urlencode(active)) if query.cursor else "", filtered=bool(active),
        )  # fmt: skip

    @router.get("/ui/servers/{name:path}", response_class=HTMLResponse)
    async def server_page(name: str, request: Request, session: SessionDep) -> HTMLResponse:
        version = request.query_params.get("version") or "latest"
        view = await run_in_threadpool(server_view, registry, name, version)
        if view is None:
            return await run_in_threadpool(
                pages.message, session, 404, "Server not found",
                f"There is no server {name!r} with version {version!r} in the registry.",
            )  # fmt: skip
        # Only reviewed (routed) servers are probed: a draft's declared upstream is not trusted as a target.
        view["health"] = await probe_health(view["upstream"]) if view["upstream"] and view["routed"] else "unknown"
        view["usage"] = await run_in_threadpool(usage.server, view["route"])
        caller = session.caller
        view["my_reviews"] = {s.review for s in view["reviews"] if caller and s.group in caller.groups}
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return await run_in_threadpool(
            lambda: pages.render(session, "server.html", path=request.url.path, here=here, **view)
        )

    return router
