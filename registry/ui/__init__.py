"""The registry's web UI: server-rendered pages where people discover servers and sign off their reviews.

    GET  /                          the catalog: search, filters, cursor pagination          (`browse`)
    GET  /ui/servers/{name}         one version: tools, governance, reviews, live health, usage, how to connect
    GET  /ui/reviews                the review queue; POST signs one review off (approve | reject)  (`reviews`)
    GET  /ui/login, /ui/logout ...  sign-in through the authorization server, the development login, sign-out
                                                                                               (`login`)

The session is Starlette's signed-cookie session (`session`); every POST form carries its CSRF token and is
refused (403) without it. What the pages show is built in `views`, rendered by `pages`; form bodies are read by
`forms`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from portcullis_contracts.directory import Directory, DirectoryError, load_directory
from registry.api import Registry
from registry.errors import ConfigurationError
from registry.oauth_login import OAuthLogin
from registry.ui.browse import browse_routes
from registry.ui.login import login_routes
from registry.ui.pages import Pages
from registry.ui.reviews import review_routes
from registry.ui.session import SESSION_COOKIE, SESSION_MAX_AGE_SECONDS, install_sessions
from registry.ui.views import connect_snippets, review_states
from registry.usage import UsageIndex

__all__ = ["SESSION_COOKIE", "SESSION_MAX_AGE_SECONDS", "build_ui", "connect_snippets", "review_states"]

_STATIC = Path(__file__).resolve().parent.parent / "static"


def build_ui(app: FastAPI, registry: Registry) -> None:
    """Mount the web UI's pages, static files and session middleware on the registry's app.

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
    install_sessions(app, settings)
    pages = Pages(registry, directory)
    oauth = OAuthLogin(settings, registry.verifier) if settings.oauth_client_id else None
    app.mount("/ui/static", StaticFiles(directory=_STATIC), name="ui-static")
    app.include_router(browse_routes(registry, pages, UsageIndex(settings.decision_log)))
    app.include_router(review_routes(registry, pages))
    app.include_router(login_routes(settings, pages, oauth, directory))
