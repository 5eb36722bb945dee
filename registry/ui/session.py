"""The web UI's session: Starlette's `SessionMiddleware` (a signed cookie) and a typed view of what it holds.

The cookie holds the signed-in person's identity claims, a CSRF token, one-shot messages and, between the
redirect to the authorization server and its callback, the pending sign-in. It is signed (itsdangerous, with
`REGISTRY_SESSION_SECRET`), HttpOnly, SameSite=Lax, Secure when the registry is served over https, and expires
`SESSION_MAX_AGE_SECONDS` after it was last written. A tampered, foreign or expired cookie is an empty session.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from starlette.middleware.sessions import SessionMiddleware

from registry.identity import RegistryCaller
from registry.oauth_login import PendingLogin
from registry.settings import RegistrySettings

__all__ = [
    "LOGIN_MAX_AGE_SECONDS",
    "SESSION_COOKIE",
    "SESSION_MAX_AGE_SECONDS",
    "UI_CLIENT",
    "SessionDep",
    "UiSession",
    "install_sessions",
    "ui_session",
]

SESSION_COOKIE = "portcullis_session"
SESSION_MAX_AGE_SECONDS = 12 * 3600
LOGIN_MAX_AGE_SECONDS = 600
UI_CLIENT = "registry-ui"
_CSRF, _USER, _FLASHES, _LOGIN = "csrf", "user", "flashes", "login"


def install_sessions(app: FastAPI, settings: RegistrySettings) -> None:
    """Add the session middleware, keyed by `REGISTRY_SESSION_SECRET`."""
    # Empty only in development (the settings refuse it in production): sessions then last as long as the process.
    secret = settings.session_secret.get_secret_value() or secrets.token_urlsafe(32)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_SECONDS,
        path="/",
        same_site="lax",
        https_only=settings.public_url.lower().startswith("https://"),
    )


class UiSession:
    """A typed view of `request.session`; every change marks the session for the middleware to write back."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    @property
    def csrf(self) -> str:
        """This session's CSRF token (a new session gets one, so its first page sets the cookie)."""
        token = self._data.get(_CSRF)
        if not isinstance(token, str) or not token:
            token = self._data[_CSRF] = secrets.token_urlsafe(32)
        return token

    def csrf_matches(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf.encode(), (presented or "").encode())

    @property
    def user(self) -> dict[str, Any] | None:
        user = self._data.get(_USER)
        return user if isinstance(user, dict) and isinstance(user.get("id"), str) else None

    @property
    def caller(self) -> RegistryCaller | None:
        user = self.user
        if user is None:
            return None
        return RegistryCaller(
            id=str(user["id"]),
            client=UI_CLIENT,
            email=str(user.get("email", "")),
            name=str(user.get("name", "")),
            groups=tuple(user.get("groups", ())),
            business_groups=tuple(user.get("business_groups", ())),
        )

    def sign_in(self, user: dict[str, Any]) -> None:
        self._data[_USER] = user
        self._data[_CSRF] = secrets.token_urlsafe(32)  # a new session: a token seen before signing in is worthless

    def sign_out(self) -> None:
        self._data.pop(_USER, None)
        self._data[_CSRF] = secrets.token_urlsafe(32)

    def flash(self, kind: str, text: str) -> None:
        # Reassigned, not appended: the middleware writes the cookie back only when a key is set.
        self._data[_FLASHES] = [*self._flashes(), {"kind": kind, "text": text}]

    def take_flashes(self) -> list[dict[str, str]]:
        flashes = self._flashes()
        self._data.pop(_FLASHES, None)
        return flashes

    def _flashes(self) -> list[dict[str, str]]:
        flashes = self._data.get(_FLASHES)
        return flashes if isinstance(flashes, list) else []

    def begin_login(self, pending: PendingLogin) -> None:
        """Remember a sign-in sent to the authorization server until its callback (at most ten minutes)."""
        self._data[_LOGIN] = {**pending.__dict__, "at": time.time()}

    def pending_login(self) -> PendingLogin | None:
        """The sign-in this browser started here, unless it expired; kept until one completes."""
        raw = self._data.get(_LOGIN)
        if not isinstance(raw, dict) or not isinstance(raw.get("at"), int | float):
            return None
        if time.time() - raw["at"] > LOGIN_MAX_AGE_SECONDS:
            return None
        fields = [raw.get(key) for key in ("state", "verifier", "next")]
        if not all(isinstance(value, str) for value in fields):
            return None
        state, verifier, next_path = (str(value) for value in fields)
        return PendingLogin(state=state, verifier=verifier, next=next_path)

    def end_login(self) -> None:
        self._data.pop(_LOGIN, None)


def ui_session(request: Request) -> UiSession:
    """The session of this request (the middleware loaded it from the cookie)."""
    return UiSession(request.session)


SessionDep = Annotated[UiSession, Depends(ui_session)]
