"""The registry's web UI: server-rendered pages where people discover servers and sign off their reviews.

    GET  /                          the catalog: search, filters, cursor pagination
    GET  /ui/servers/{name}         one version: tools, governance, reviews, live health, usage, how to connect
    GET  /ui/reviews                the review queue; POST signs one review off (approve | reject)
    GET  /ui/login, POST            the development login (only with `dev_login`; the OAuth login comes later)
    GET  /ui/logout, POST           sign out

The session is an itsdangerous-signed cookie holding the signed-in person's identity claims and a CSRF
token; every POST form carries the token and is refused (403) without it. Writes go through `service` and
the policy engine exactly as the API's do; their errors become a message on the page, never a trace.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from gateway.config import canonical_uri
from portcullis_contracts.directory import Directory, DirectoryError, load_directory
from registry import service
from registry.api import Registry
from registry.errors import (
    AuthzUnavailable,
    ConfigurationError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RegistryError,
)
from registry.identity import Caller
from registry.models import LIFECYCLE, Review, Server, ServerVersion
from registry.oauth_login import LoginFailed, LoginUnavailable, OAuthLogin, PendingLogin
from registry.usage import UsageIndex

__all__ = ["SESSION_COOKIE", "build_ui", "connect_snippets", "review_states"]

SESSION_COOKIE = "portcullis_session"
_LOGIN_COOKIE = "portcullis_registry_login"
_LOGIN_MAX_AGE = 600
SESSION_MAX_AGE_SECONDS = 12 * 3600
HEALTH_TIMEOUT_SECONDS = 0.5
UI_CLIENT = "registry-ui"
_FORM_LIMIT_BYTES = 16 * 1024
_HERE = Path(__file__).parent
_LIFECYCLE_LABELS = {
    "draft": "Draft",
    "pending_review": "Pending review",
    "approved": "Approved",
    "deprecated": "Deprecated",
    "retired": "Retired",
    "rejected": "Rejected",
}
_ROUTED = ("approved", "deprecated")
_REVIEW_LABELS = {"genai": "GenAI"}
_REFUSALS = {
    "not_in_review_group": "you are not a member of {group}, the group that signs the {review} review",
    "own_submission": "you published this version, so someone else must review it (four-eyes rule)",
}
# Pages are plain HTML with one same-origin script: nothing inline is needed, so nothing inline is allowed.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# --- session -----------------------------------------------------------------------------------------------------


@dataclass
class UiSession:
    """What the cookie holds: a CSRF token, the signed-in person (if any) and one-shot messages."""

    csrf: str
    user: dict[str, Any] | None = None
    flashes: list[dict[str, str]] = field(default_factory=list)
    changed: bool = False

    @property
    def caller(self) -> Caller | None:
        if self.user is None:
            return None
        return Caller(
            id=str(self.user["id"]),
            client=UI_CLIENT,
            email=str(self.user.get("email", "")),
            name=str(self.user.get("name", "")),
            groups=tuple(self.user.get("groups", ())),
            business_groups=tuple(self.user.get("business_groups", ())),
        )

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append({"kind": kind, "text": text})
        self.changed = True

    def take_flashes(self) -> list[dict[str, str]]:
        flashes, self.flashes = self.flashes, []
        self.changed = self.changed or bool(flashes)
        return flashes

    def sign_in(self, user: dict[str, Any]) -> None:
        self.user = user
        self.csrf = secrets.token_urlsafe(32)  # a new session: a token seen before signing in is worthless
        self.changed = True

    def sign_out(self) -> None:
        self.user = None
        self.csrf = secrets.token_urlsafe(32)
        self.changed = True

    def csrf_matches(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf.encode(), (presented or "").encode())


class SessionCookies:
    """Loads and stores `UiSession`s in a signed, HttpOnly, SameSite=Lax cookie (Secure over https)."""

    def __init__(self, secret: str, *, secure: bool, max_age: int = SESSION_MAX_AGE_SECONDS):
        self._signer = URLSafeTimedSerializer(secret, salt="portcullis.registry.ui-session")
        self._secure = secure
        self._max_age = max_age

    def load(self, request: Request) -> UiSession:
        raw = request.cookies.get(SESSION_COOKIE)
        if raw:
            try:
                data = self._signer.loads(raw, max_age=self._max_age)
            except BadSignature:  # tampered, signed with another secret, or expired: a fresh session
                data = None
            if isinstance(data, dict) and isinstance(data.get("csrf"), str):
                user = data.get("user")
                flashes = data.get("flashes")
                return UiSession(
                    csrf=data["csrf"],
                    user=user if isinstance(user, dict) and isinstance(user.get("id"), str) else None,
                    flashes=flashes if isinstance(flashes, list) else [],
                )
        return UiSession(csrf=secrets.token_urlsafe(32), changed=True)

    def store(self, response: Response, session: UiSession) -> None:
        if not session.changed:
            return
        value = self._signer.dumps({"csrf": session.csrf, "user": session.user, "flashes": session.flashes})
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self._max_age,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self._secure,
        )


async def _read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (bounded); anything unreadable is an empty form, so its CSRF check fails."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_LIMIT_BYTES:
            return {}
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def _local_path(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, nothing a browser would reinterpret)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if any(ord(c) < 0x21 or c in "\\\x7f" for c in target):
        return "/"
    return target


# --- view models -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewState:
    """One required review of one version: passed, rejected or pending, and the sign-off that decided it."""

    review: str
    group: str
    state: str
    record: Review | None


def review_states(required: dict[str, str], reviews: list[Review]) -> list[ReviewState]:
    """The state of every required review, in settings order (an approval counts over an earlier rejection)."""
    states = []
    for name, group in required.items():
        signed = [r for r in reviews if r.review == name]
        approved = next((r for r in signed if r.decision == "approve"), None)
        rejected = next((r for r in reversed(signed) if r.decision == "reject"), None)
        state = "passed" if approved else "rejected" if rejected else "pending"
        states.append(ReviewState(name, group, state, approved or rejected))
    return states


def connect_snippets(route: str, url: str) -> list[dict[str, str]]:
    """Copy-paste configuration for common MCP clients, all pointing at the gateway URL."""
    vscode = {"servers": {route: {"type": "http", "url": url}}}
    cursor = {"mcpServers": {route: {"url": url}}}
    return [
        {"id": "claude-code", "client": "Claude Code", "where": "Run in a terminal",
         "text": f"claude mcp add --transport http {shlex.quote(route)} {shlex.quote(url)}"},
        {"id": "claude-desktop", "client": "Claude Desktop", "where": "Settings → Connectors → Add custom connector",
         "text": url},
        {"id": "vscode", "client": "VS Code", "where": ".vscode/mcp.json", "text": json.dumps(vscode, indent=2)},
        {"id": "cursor", "client": "Cursor", "where": "~/.cursor/mcp.json", "text": json.dumps(cursor, indent=2)},
    ]  # fmt: skip


def _tools(governance: dict[str, Any]) -> list[dict[str, Any]]:
    tools = []
    for tool in governance.get("tools", []):
        entry = {"description": "", "sensitivity": "internal", "read_only": True, "business_groups": [], **tool}
        entry["restricted"] = entry["sensitivity"] in ("confidential", "restricted")
        tools.append(entry)
    return tools


def _timeline(events: list[Any], reviews: list[Review]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"at": e.at, "kind": "status", "actor": e.actor, "reason": e.reason,
         "from": e.from_status, "to": e.to_status}
        for e in events
    ] + [
        {"at": r.at, "kind": "review", "actor": r.reviewer, "reason": r.reason,
         "review": r.review, "decision": r.decision, "group": r.reviewer_group}
        for r in reviews
    ]  # fmt: skip
    return sorted(items, key=lambda item: item["at"], reverse=True)


def _explain(exc: RegistryError, settings_reviews: dict[str, str], review: str) -> str:
    if isinstance(exc, Forbidden):
        reason = str(exc.details.get("reason", ""))
        text = _REFUSALS.get(reason, "this action is not allowed for you")
        group = settings_reviews.get(review, "")
        return f"The policy refused this sign-off: {text.format(group=group, review=review)} ({reason or 'denied'})."
    if isinstance(exc, NotFound):
        return "That server version does not exist any more."
    if isinstance(exc, AuthzUnavailable | Conflict | InvalidRequest):
        return exc.message[:1].upper() + exc.message[1:] + ("" if exc.message.endswith(".") else ".")
    return exc.message


async def probe_health(upstream: str, *, timeout: float = HEALTH_TIMEOUT_SECONDS) -> str:
    """`healthy` when the upstream's `/healthz` answers 200 within the timeout; `unhealthy` or `unreachable`."""

    async def ask() -> int:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            return (await client.get(f"http://{upstream}/healthz")).status_code

    try:
        status = await asyncio.wait_for(ask(), timeout)
    except (httpx.HTTPError, TimeoutError, OSError):
        return "unreachable"
    return "healthy" if status == 200 else "unhealthy"


# --- the pages ---------------------------------------------------------------------------------------------------


class _Pages:
    """Renders templates with the page chrome, security headers and the session cookie."""

    def __init__(self, registry: Registry, sessions: SessionCookies, directory: Directory | None):
        self.registry = registry
        self.settings = registry.settings
        self.sessions = sessions
        self.directory = directory
        self.env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=True, undefined=StrictUndefined)
        self.env.filters["when"] = _when
        self.env.globals.update(
            lifecycle_label=lambda state: _LIFECYCLE_LABELS.get(state, state),
            review_label=lambda review: _REVIEW_LABELS.get(review, review.replace("_", " ").capitalize()),
            server_url=_server_url,
            client_name=self.client_name,
        )

    def client_name(self, client: str) -> str:
        known = self.directory.clients.get(client) if self.directory else None
        return known.name if known is not None and known.name else client

    def render(
        self, session: UiSession, template: str, *, status: int = 200, path: str = "/", here: str = "", **context: Any
    ) -> HTMLResponse:
        """A page; `path` picks the current navigation item, `here` (default: `path`) is where sign-in returns."""
        with self.registry.reading() as db:
            pending = service.lifecycle_counts(db).get("pending_review", 0)
        html = self.env.get_template(template).render(
            user=session.user,
            csrf=session.csrf,
            flashes=session.take_flashes(),
            pending_count=pending,
            dev_login=self.settings.dev_login,
            path=path,
            here=here or path,
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers=_HEADERS)
        self.sessions.store(response, session)
        return response

    def redirect(self, session: UiSession, target: str) -> RedirectResponse:
        response = RedirectResponse(target, status_code=303)
        self.sessions.store(response, session)
        return response

    def message(self, session: UiSession, status: int, title: str, text: str, path: str = "/") -> HTMLResponse:
        return self.render(session, "message.html", status=status, title=title, text=text, path=path)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _server_url(name: str, version: str | None = None) -> str:
    url = f"/ui/servers/{quote(name, safe='/')}"
    return f"{url}?{urlencode({'version': version})}" if version else url


def build_ui(app: FastAPI, registry: Registry) -> None:
    """Mount the web UI's pages and static files on the registry's app.

    Raises:
        ConfigurationError: the development login is on but the directory file cannot be read.
    """
    settings = registry.settings
    directory: Directory | None = None
    try:
        directory = load_directory(settings.directory_file)
    except DirectoryError as exc:
        if settings.dev_login:
            raise ConfigurationError(f"the development login needs the directory file: {exc}") from None
    # Empty only in development (the settings refuse it in production): a fresh secret per start.
    secret = settings.session_secret.get_secret_value() or secrets.token_urlsafe(32)
    sessions = SessionCookies(secret, secure=settings.public_url.lower().startswith("https://"))
    pages = _Pages(registry, sessions, directory)
    usage = UsageIndex(settings.decision_log)
    app.mount("/ui/static", StaticFiles(directory=_HERE / "static"), name="ui-static")

    def forbidden(session: UiSession) -> HTMLResponse:
        return pages.message(
            session, 403, "This form has expired",
            "The form did not carry this session's security token. Reload the page and try again.",
        )  # fmt: skip

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def catalog(request: Request) -> HTMLResponse:
        session = sessions.load(request)
        params = request.query_params
        filters = {
            key: (params.get(key) or "").strip()[:200] for key in ("q", "team", "status", "sensitivity", "group")
        }
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
            cards=_cards(rows), filters=filters, facets=facets, counts=counts, lifecycles=LIFECYCLE, error=error,
            next_url="/?" + urlencode({**active, "cursor": next_cursor}) if next_cursor else "",
            first_url=("/?" + urlencode(active)) if query.cursor else "", filtered=bool(active),
        )  # fmt: skip

    @app.get("/ui/servers/{name:path}", response_class=HTMLResponse, include_in_schema=False)
    async def server_page(name: str, request: Request) -> HTMLResponse:
        session = sessions.load(request)
        version = request.query_params.get("version") or "latest"
        view = await run_in_threadpool(_server_view, registry, name, version)
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

    @app.get("/ui/reviews", response_class=HTMLResponse, include_in_schema=False)
    def reviews(request: Request) -> HTMLResponse:
        session = sessions.load(request)
        caller = session.caller
        items = []
        with registry.reading() as db:
            for row in service.pending_queue(db):
                _, signed = service.history(db, row=row)
                states = review_states(settings.reviews, signed)
                items.append(
                    {"row": row, "reviews": states, "governance": service.governance_of(row),
                     "passed": sum(s.state == "passed" for s in states),
                     "signable": {s.review for s in states if caller and s.group in caller.groups
                                  and s.state != "passed"},
                     "own": caller is not None and row.published_by == caller.id}
                )  # fmt: skip
        return pages.render(session, "reviews.html", path="/ui/reviews", items=items, required=settings.reviews)

    @app.post("/ui/reviews", include_in_schema=False)
    async def sign_review(request: Request) -> Response:
        session = sessions.load(request)
        form = await _read_form(request)
        if not session.csrf_matches(form.get("csrf_token")):
            return await run_in_threadpool(forbidden, session)
        caller = session.caller
        if caller is None:
            session.flash("error", "Sign in to sign off reviews.")
            return pages.redirect(session, "/ui/login?" + urlencode({"next": "/ui/reviews"}))
        kind, text = await run_in_threadpool(_sign, registry, caller, form)
        session.flash(kind, text)
        return pages.redirect(session, _local_path(form.get("next") or "/ui/reviews"))

    oauth = OAuthLogin(settings, registry.verifier) if settings.oauth_client_id else None
    pending_signer = URLSafeTimedSerializer(secret, salt="portcullis.registry.oauth-login")
    secure = settings.public_url.lower().startswith("https://")

    @app.get("/ui/login/oauth", include_in_schema=False)
    def oauth_start(request: Request) -> Response:
        session = sessions.load(request)
        if oauth is None:
            return pages.message(session, 404, "Sign-in is not configured", "This registry has no single sign-on.")
        try:
            url, pending = oauth.start(_local_path(request.query_params.get("next")))
        except LoginFailed as exc:
            return pages.message(session, 503, "Sign-in is unavailable", str(exc), path="/ui/login")
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            _LOGIN_COOKIE, pending_signer.dumps(pending.__dict__), max_age=_LOGIN_MAX_AGE, httponly=True,
            samesite="lax", secure=secure, path="/auth/callback",
        )  # fmt: skip
        return response

    @app.get("/auth/callback", include_in_schema=False)
    def oauth_callback(request: Request) -> Response:
        session = sessions.load(request)
        if oauth is None:
            return pages.message(session, 404, "Sign-in is not configured", "This registry has no single sign-on.")
        try:
            raw = pending_signer.loads(request.cookies.get(_LOGIN_COOKIE, ""), max_age=_LOGIN_MAX_AGE)
            caller = oauth.finish(dict(request.query_params), PendingLogin(**raw))
        except BadSignature:
            return pages.message(session, 400, "Sign-in expired", "This sign-in expired or did not start here.")
        except LoginUnavailable as exc:  # the authorization server's fault, not the person's
            return pages.message(session, 502, "Sign-in is unavailable", str(exc), path="/ui/login")
        except (LoginFailed, RegistryError) as exc:
            return pages.message(session, 400, "Sign-in failed", str(exc), path="/ui/login")
        session.sign_in(
            {"id": caller.id, "name": caller.name or caller.id, "email": caller.email,
             "groups": list(caller.groups), "business_groups": list(caller.business_groups)}
        )  # fmt: skip
        session.flash("success", f"Signed in as {caller.name or caller.id}.")
        response = pages.redirect(session, raw["next"])
        response.delete_cookie(_LOGIN_COOKIE, path="/auth/callback")
        return response

    @app.get("/ui/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request) -> Response:
        session = sessions.load(request)
        if oauth is not None and not settings.dev_login:
            return RedirectResponse(
                "/ui/login/oauth?" + urlencode({"next": _local_path(request.query_params.get("next"))}), 303
            )
        if not settings.dev_login or directory is None:
            return pages.message(
                session, 404, "Sign-in is not configured",
                "This registry has no sign-in yet. You can still browse the catalog without signing in.",
                path="/ui/login",
            )  # fmt: skip
        people = sorted(directory.users.items())
        target = _local_path(request.query_params.get("next"))
        return pages.render(
            session, "login.html", path="/ui/login", people=people, next=target, oauth=oauth is not None
        )

    @app.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        session = sessions.load(request)
        form = await _read_form(request)
        if not settings.dev_login or directory is None:
            return await run_in_threadpool(
                pages.message, session, 404, "Sign-in is not configured", "This registry has no sign-in yet."
            )
        if not session.csrf_matches(form.get("csrf_token")):
            return await run_in_threadpool(forbidden, session)
        person = directory.users.get(form.get("user", ""))
        if person is None:
            session.flash("error", "No such person in the directory.")
            return pages.redirect(session, "/ui/login")
        user_id = form["user"]
        session.sign_in(
            {"id": user_id, "name": person.name or user_id, "email": person.email,
             "groups": sorted(person.groups), "business_groups": sorted(person.business_groups)}
        )  # fmt: skip
        session.flash("success", f"Signed in as {person.name or user_id}.")
        return pages.redirect(session, _local_path(form.get("next")))

    @app.get("/ui/logout", response_class=HTMLResponse, include_in_schema=False)
    def logout_page(request: Request) -> Response:
        session = sessions.load(request)
        if session.user is None:
            return pages.redirect(session, "/")
        return pages.render(session, "logout.html", path="/ui/logout")

    @app.post("/ui/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session = sessions.load(request)
        form = await _read_form(request)
        if not session.csrf_matches(form.get("csrf_token")):
            return await run_in_threadpool(forbidden, session)
        session.sign_out()
        session.flash("success", "Signed out.")
        return pages.redirect(session, "/")


def _cards(rows: list[ServerVersion]) -> list[dict[str, Any]]:
    """One card per server: its newest version on the page, and the others listed on it."""
    cards: list[dict[str, Any]] = []
    for row in rows:
        if cards and cards[-1]["row"].server_name == row.server_name:
            cards[-1]["others"].append(cards[-1]["row"].version)
            cards[-1]["row"] = row
        else:
            cards.append({"row": row, "others": []})
    for card in cards:
        governance = service.governance_of(card["row"])
        card["tools"] = len(governance.get("tools", []))
        card["support"] = str(governance.get("support_channel", ""))
    return cards


def _server_view(registry: Registry, name: str, version: str) -> dict[str, Any] | None:
    """Everything the server page shows from the database; None when there is no such version."""
    if name.count("/") != 1:
        return None
    settings = registry.settings
    with registry.reading() as db:
        try:
            row = service.find_version(db, name=name, version=version)
        except NotFound:
            return None
        server = db.get(Server, row.server_name)
        route = server.route if server else ""
        events, signed = service.history(db, row=row)
        versions = service.list_server_versions(db, name=name, include_deleted=True)
    # The rows are plain loaded objects now (no lazy relationships), readable after the session closed.
    governance = service.governance_of(row)
    url = canonical_uri(settings.gateway_url, route)
    return {
        "row": row,
        "route": route,
        "governance": governance,
        "tools": _tools(governance),
        "reviews": review_states(settings.reviews, signed),
        "timeline": _timeline(events, signed),
        "versions": [(v.version, v.lifecycle) for v in versions],
        "gateway_url": url,
        "routed": row.lifecycle in _ROUTED,
        "snippets": connect_snippets(route, url),
        "upstream": str(governance.get("upstream", "")),
        "website": _web_link(row.document.get("websiteUrl")),
    }


def _web_link(value: Any) -> str:
    """A link for the page only when it is http(s): a published document must not smuggle `javascript:` in."""
    if isinstance(value, str) and value.lower().startswith(("https://", "http://")):
        return value
    return ""


def _sign(registry: Registry, caller: Caller, form: dict[str, str]) -> tuple[str, str]:
    """Sign one review off as the form says; a (kind, message) for the page either way."""
    name, version = form.get("server", ""), form.get("version", "")
    review, decision = form.get("review", ""), form.get("decision", "")
    reason = form.get("reason", "").strip()[:500]
    settings = registry.settings
    try:
        with registry.writing() as db:
            row = service.find_version(db, name=name, version=version, lock=True)
            service.sign_off(
                db, row=row, review=review, decision=decision, reason=reason, caller=caller,
                authz=registry.authz, required_reviews=settings.reviews,
            )  # fmt: skip
            title, lifecycle = f"{row.title or row.server_name} {row.version}", row.lifecycle
    except RegistryError as exc:
        return "error", _explain(exc, settings.reviews, review)
    verb = "approved" if decision == "approve" else "rejected"
    text = f"The {review} review of {title} is {verb}."
    if lifecycle == "approved":
        text += f" Every required review passed: {title} is now approved and reaches the gateway."
    elif lifecycle == "rejected":
        text += f" {title} is now rejected."
    return "success", text
