"""Renders the UI's templates with the page chrome and its security headers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from portcullis_contracts.directory import Directory
from registry import service
from registry.api import Registry
from registry.ui.session import UiSession

__all__ = ["Pages"]

_PACKAGE = Path(__file__).resolve().parent.parent
_LIFECYCLE_LABELS = {
    "draft": "Draft",
    "pending_review": "Pending review",
    "approved": "Approved",
    "deprecated": "Deprecated",
    "retired": "Retired",
    "rejected": "Rejected",
}
_REVIEW_LABELS = {"genai": "GenAI"}
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


class Pages:
    """Renders templates (`registry/templates/`) with the page chrome and security headers."""

    def __init__(self, registry: Registry, directory: Directory | None):
        self.registry = registry
        self.settings = registry.settings
        self.directory = directory
        self.env = Environment(
            loader=FileSystemLoader(_PACKAGE / "templates"), autoescape=True, undefined=StrictUndefined
        )
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
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def message(self, session: UiSession, status: int, title: str, text: str, path: str = "/") -> HTMLResponse:
        return self.render(session, "message.html", status=status, title=title, text=text, path=path)

    def form_expired(self, session: UiSession) -> HTMLResponse:
        """The answer to a form post without this session's CSRF token."""
        return self.message(
            session, 403, "This form has expired",
            "The form did not carry this session's security token. Reload the page and try again.",
        )  # fmt: skip

    @staticmethod
    def redirect(target: str) -> RedirectResponse:
        return RedirectResponse(target, status_code=303)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _server_url(name: str, version: str | None = None) -> str:
    url = f"/ui/servers/{quote(name, safe='/')}"
    return f"{url}?{urlencode({'version': version})}" if version else url
