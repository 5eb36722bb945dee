"""Shared pieces of the server-kit tests: a signing key with its JWKS, the real AuthZEN app in-process, an MCP
client over the kit's ASGI app, and token minting.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
import yaml
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr
from starlette.applications import Starlette

from authz_service.catalog import FileCatalogSource
from authz_service.http_app import create_app as create_authz_app
from authz_service.keys import SigningKey
from authz_service.runtime import Runtime
from authz_service.settings import Settings as AuthzSettings
from portcullis.testing import JwksServer
from server_kit import Kit, KitSettings

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "http://127.0.0.1:8181"
GATEWAY = "http://127.0.0.1:8080"
RESOURCE = f"{GATEWAY}/servers/demo/mcp"
SERVICE_SECRET = "kit-test-service-credential-0123456789"
BASE = "http://127.0.0.1:8300"
ALICE = {"groups": ["eng", "ads-eng"], "business_groups": ["ads"], "email": "alice@example.com"}
BOB = {"groups": ["eng", "platform"], "business_groups": ["search"], "email": "bob@example.com"}


@dataclass
class Issuer:
    """A signing key and its JWKS served on 127.0.0.1 (a real HTTP server in a thread)."""

    key: SigningKey
    jwks: JwksServer

    def token(
        self,
        user: str = "alice",
        *,
        claims: dict[str, Any] | None = None,
        audience: str = RESOURCE,
        issuer: str = ISSUER,
        client_id: str = "claude-desktop",
        scope: str = "mcp",
        ttl_seconds: int = 600,
        now: float | None = None,
    ) -> str:
        facts = dict(ALICE if user == "alice" else BOB)
        facts.update(claims or {})
        facts["scope"] = scope
        return self.key.mint(
            issuer=issuer,
            subject=user,
            audience=audience,
            client_id=client_id,
            claims=facts,
            ttl_seconds=ttl_seconds,
            now=now,
        )


@contextmanager
def running_issuer() -> Iterator[Issuer]:
    key = SigningKey.generate()
    jwks = JwksServer(key.jwks())
    try:
        yield Issuer(key, jwks)
    finally:
        jwks.close()


@dataclass
class AuthzenRecorder:
    """Remembers the AuthZEN requests the kit sent (paths and bodies)."""

    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append((request.url.path, json.loads(request.content or b"{}")))

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


def catalog_with_tools(tmp_path: Path, server: str, tools: list[dict[str, Any]]) -> Path:
    """config/catalog.yaml with more tools on one server, written under `tmp_path`."""
    document = FileCatalogSource(ROOT / "config" / "catalog.yaml").document()
    entry = next(entry for entry in document["servers"] if entry["name"] == server)
    entry["tools"] = [*entry["tools"], *tools]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@contextmanager
def real_authzen(tmp_path: Path, catalog_file: Path | None = None) -> Iterator[tuple[Starlette, Runtime]]:
    """authz_service's HTTP app in-process, deciding with the real policies and config/catalog.yaml (or the
    given catalog)."""
    settings = AuthzSettings(
        policy_dir=ROOT / "policies",
        catalog_file=catalog_file or ROOT / "config" / "catalog.yaml",
        decision_log=tmp_path / "decisions.jsonl",
        key_dir=tmp_path / "keys",
        service_credentials={"demo": SecretStr(SERVICE_SECRET)},
        identity=False,
        watch=False,
    )
    runtime = Runtime(settings)
    try:
        yield create_authz_app(runtime), runtime
    finally:
        runtime.close()


def authz_client(app: Any, recorder: AuthzenRecorder | None = None) -> httpx.AsyncClient:
    """An AuthZEN HTTP client over an in-process ASGI app (or an `httpx.MockTransport`)."""
    transport = app if isinstance(app, httpx.AsyncBaseTransport) else httpx.ASGITransport(app=app)
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [recorder]} if recorder is not None else {}
    return httpx.AsyncClient(transport=transport, base_url=ISSUER, event_hooks=hooks, timeout=2)


def kit_settings(issuer: Issuer, **overrides: Any) -> KitSettings:
    values: dict[str, Any] = {
        "server": "demo",
        "issuer": ISSUER,
        "jwks_url": issuer.jwks.url,
        "revocation_url": issuer.jwks.revocation_url,
        "gateway_url": GATEWAY,
        "authz_url": ISSUER,
        "authz_credential": SERVICE_SECRET,
        **overrides,
    }
    return KitSettings(**values)


@asynccontextmanager
async def started(app: Starlette) -> AsyncIterator[Starlette]:
    """Run the app's lifespan (the SDK's session manager) around the block."""
    async with app.router.lifespan_context(app):
        yield app


def http(app: Starlette, token: str | None = None, **headers: str) -> httpx2.AsyncClient:
    """An httpx2 client (the SDK's) over the kit's ASGI app, with a bearer token when given."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE, headers=headers, timeout=10)


@asynccontextmanager
async def mcp_client(app: Starlette, token: str, **headers: str) -> AsyncIterator[Client]:
    """The real MCP SDK client, speaking streamable HTTP to the in-process app."""
    async with eliciting_client(app, token, None, headers) as client:
        yield client


@asynccontextmanager
async def eliciting_client(
    app: Starlette, token: str, callback: ElicitationFnT | None, headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    """`mcp_client`, answering elicitation with `callback` (None: the client declares no elicitation)."""
    client_http = http(app, token, **(headers or {}))
    transport = streamable_http_client(f"{BASE}/mcp", http_client=client_http)
    async with client_http, Client(transport, elicitation_callback=callback) as client:
        yield client


def build_app(
    kit: Kit, issuer: Issuer, authzen: Any, recorder: AuthzenRecorder | None = None, **settings: Any
) -> Starlette:
    return kit.create_app(kit_settings(issuer, **settings), authz_http=authz_client(authzen, recorder))
