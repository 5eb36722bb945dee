"""Signing in and out of the UI: through the platform's authorization server (`REGISTRY_OAUTH_CLIENT_ID`), or the
development login (pick a directory user; only with `REGISTRY_DEV_LOGIN`, off by default, refused in production).

    GET  /ui/login/oauth            send the browser to the authorization server (the pending sign-in in the session)
    GET  /auth/callback             its answer: the verified token's identity becomes the session's
    GET  /ui/login, POST            the development login (GET redirects to the OAuth sign-in when that is the one)
    GET  /ui/logout, POST           sign out
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from portcullis_contracts.directory import Directory
from registry.errors import RegistryError
from registry.oauth_login import LoginFailed, LoginUnavailable, OAuthLogin
from registry.settings import RegistrySettings
from registry.ui.forms import local_path, read_form
from registry.ui.pages import Pages
from registry.ui.session import SessionDep

__all__ = ["login_routes"]

_NOT_CONFIGURED = "Sign-in is not configured"


def login_routes(
    settings: RegistrySettings, pages: Pages, oauth: OAuthLogin | None, directory: Directory | None
) -> APIRouter:
    """The sign-in and sign-out routes; `oauth` is None without single sign-on, `directory` without a directory."""
    router = APIRouter(include_in_schema=False)

    @router.get("/ui/login/oauth")
    def oauth_start(request: Request, session: SessionDep) -> Response:
        if oauth is None:
            return pages.message(session, 404, _NOT_CONFIGURED, "This registry has no single sign-on.")
        try:
            url, pending = oauth.start(local_path(request.query_params.get("next")))
        except LoginFailed as exc:
            return pages.message(session, 503, "Sign-in is unavailable", str(exc), path="/ui/login")
        session.begin_login(pending)
        return RedirectResponse(url, status_code=303)

    @router.get("/auth/callback")
    def oauth_callback(request: Request, session: SessionDep) -> Response:
        if oauth is None:
            return pages.message(session, 404, _NOT_CONFIGURED, "This registry has no single sign-on.")
        pending = session.pending_login()
        if pending is None:
            return pages.message(session, 400, "Sign-in expired", "This sign-in expired or did not start here.")
        try:
            caller = oauth.finish(dict(request.query_params), pending)
        except LoginUnavailable as exc:  # the authorization server's fault, not the person's
            return pages.message(session, 502, "Sign-in is unavailable", str(exc), path="/ui/login")
        except (LoginFailed, RegistryError) as exc:
            return pages.message(session, 400, "Sign-in failed", str(exc), path="/ui/login")
        session.end_login()
        session.sign_in(
            {"id": caller.id, "name": caller.name or caller.id, "email": caller.email,
             "groups": list(caller.groups), "business_groups": list(caller.business_groups)}
        )  # fmt: skip
        session.flash("success", f"Signed in as {caller.name or caller.id}.")
        return pages.redirect(pending.next)

    @router.get("/ui/login", response_class=HTMLResponse)
    def login_page(request: Request, session: SessionDep) -> Response:
        if oauth is not None and not settings.dev_login:
            return RedirectResponse(
                "/ui/login/oauth?" + urlencode({"next": local_path(request.query_params.get("next"))}), 303
            )
        if not settings.dev_login or directory is None:
            return pages.message(
                session, 404, _NOT_CONFIGURED,
                "This registry has no sign-in yet. You can still browse the catalog without signing in.",
                path="/ui/login",
            )  # fmt: skip
        people = sorted(directory.users.items())
        target = local_path(request.query_params.get("next"))
        return pages.render(
            session, "login.html", path="/ui/login", people=people, next=target, oauth=oauth is not None
        )

    @router.post("/ui/login")
    async def login(request: Request, session: SessionDep) -> Response:
        form = await read_form(request)
        if not settings.dev_login or directory is None:
            return await run_in_threadpool(
                pages.message, session, 404, _NOT_CONFIGURED, "This registry has no sign-in yet."
            )
        if not session.csrf_matches(form.get("csrf_token")):
            return await run_in_threadpool(pages.form_expired, session)
        person = directory.users.get(form.get("user", ""))
        if person is None:
            session.flash("error", "No such person in the directory.")
            return pages.redirect("/ui/login")
        user_id = form["user"]
        session.sign_in(
            {"id": user_id, "name": person.name or user_id, "email": person.email,
             "groups": sorted(person.groups), "business_groups": sorted(person.business_groups)}
        )  # fmt: skip
        session.flash("success", f"Signed in as {person.name or user_id}.")
        return pages.redirect(local_path(form.get("next")))

    @router.get("/ui/logout", response_class=HTMLResponse)
    def logout_page(session: SessionDep) -> Response:
        if session.user is None:
            return pages.redirect("/")
        return pages.render(session, "logout.html", path="/ui/logout")

    @router.post("/ui/logout")
    async def logout(request: Request, session: SessionDep) -> Response:
        form = await read_form(request)
        if not session.csrf_matches(form.get("csrf_token")):
            return await run_in_threadpool(pages.form_expired, session)
        session.sign_out()
        session.flash("success", "Signed out.")
        return pages.redirect("/")

    return router
