"""An in-process authorization server for the identity tests, and the browser steps of the code flow."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from authz_service.catalog import FileCatalogSource
from authz_service.identity import IdentityProvider, build_identity_router
from authz_service.keys import KeyRing
from authz_service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "http://127.0.0.1:8181"
GATEWAY = "http://127.0.0.1:8080"
DEMO = f"{GATEWAY}/servers/demo/mcp"
REGISTRY = "http://127.0.0.1:8282"
REDIRECT = "http://127.0.0.1:5555/callback"
PASSWORD = "portcullis"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Clock:
    """A clock the test moves forward."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class AuthServer:
    client: TestClient
    identity: IdentityProvider
    keys: KeyRing
    clock: Clock
    directory_file: Path
    settings: Settings
    codes: list[str] = field(default_factory=list)

    def claims(self, token: str, audience: str | None = DEMO) -> dict[str, Any]:
        """Verify a token as a resource server would, against the published JWKS."""
        jwks = self.client.get("/.well-known/jwks.json").json()
        kid = jwt.get_unverified_header(token)["kid"]
        key = next(jwt.PyJWK(entry) for entry in jwks["keys"] if entry["kid"] == kid)
        decoded: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=audience,
            issuer=ISSUER,
            options={"verify_aud": audience is not None},
        )
        return decoded


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def build_server(
    tmp_path: Path,
    *,
    directory: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> AuthServer:
    """An authorization server over a copy of config/directory.yaml (edited by `directory`) and the test catalog."""
    data = yaml.safe_load((ROOT / "config" / "directory.yaml").read_text())
    if directory is not None:
        directory(data)
    directory_file = tmp_path / "directory.yaml"
    directory_file.write_text(yaml.safe_dump(data))
    settings = Settings(
        issuer=ISSUER,
        key_dir=tmp_path / "keys",
        identity_database_url=SecretStr(f"sqlite:///{tmp_path / 'identity.db'}"),
        directory_file=directory_file,
        gateway_url=GATEWAY,
        extra_resources=[REGISTRY],
        **{"catalog_file": ROOT / "config" / "catalog.yaml", **overrides},
    )
    catalog = FileCatalogSource(settings.catalog_file).load()
    keys = KeyRing.load_or_create(settings.key_dir, activation_seconds=0)
    clock = Clock()
    identity = IdentityProvider(settings, catalog=lambda: catalog, keys=keys, now=clock)
    app = FastAPI()
    app.include_router(build_identity_router(identity, max_body_bytes=settings.max_body_bytes))

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        return keys.jwks()

    client = TestClient(app, base_url=ISSUER)
    return AuthServer(client, identity, keys, clock, directory_file, settings)


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def authorize_params(
    challenge: str,
    *,
    client_id: str = "claude-desktop",
    redirect_uri: str = REDIRECT,
    resource: str | None = DEMO,
    scope: str = "mcp",
    state: str = "state-1",
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if resource is not None:
        params["resource"] = resource
    return params


def sign_in_and_consent(
    server: AuthServer,
    params: dict[str, str],
    *,
    user: str = "alice",
    password: str = PASSWORD,
    decision: str = "approve",
) -> dict[str, list[str]]:
    """The browser's part: the authorization request, the login form, the consent form. Returns the query of
    the redirect back to the client.
    """
    page = server.client.get("/authorize", params=params)
    assert page.status_code == 200, page.text
    if 'name="password"' in page.text:
        page = server.client.post("/login", data={"csrf": csrf_of(page.text), "username": user, "password": password})
        assert page.status_code == 200, page.text
    answer = server.client.post(
        "/consent", data={"csrf": csrf_of(page.text), "decision": decision}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(params["redirect_uri"].split("?")[0].rsplit(":", 1)[0])
    return parse_qs(urlsplit(location).query)


def code_flow(server: AuthServer, **kwargs: Any) -> tuple[str, str]:
    """A code and its PKCE verifier, for alice and claude-desktop unless told otherwise."""
    verifier, challenge = pkce()
    user = kwargs.pop("user", "alice")
    query = sign_in_and_consent(server, authorize_params(challenge, **kwargs), user=user)
    return query["code"][0], verifier


def exchange_code(
    server: AuthServer,
    code: str,
    verifier: str,
    *,
    client_id: str = "claude-desktop",
    redirect_uri: str = REDIRECT,
    **extra: str,
) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        **extra,
    }
    return server.client.post("/token", data=data)
