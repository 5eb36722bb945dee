"""The gateway as the OAuth resource server of its MCP servers (RFC 9728, RFC 6750, MCP authorization).

Real Envoy and authz_service: each server's protected-resource metadata is served without a token, a request
without one gets a 401 pointing at it, and the real `mcp` SDK OAuth client, given nothing but the server's URL,
finds the metadata, asks the authorization server it names for a token for that server and calls a tool. The
authorization server is a fake in the test (the platform has none yet); it signs with the platform's test key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

from portcullis.testing import LocalPlatform, MemoryTokenStorage

pytestmark = pytest.mark.e2e

ACCEPT = "application/json, text/event-stream"
WELL_KNOWN = "/.well-known/oauth-protected-resource"


@pytest.fixture(scope="module")
def registry_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """The platform driven by a real registry: the gateway's routes come from RDS files `GatewaySync` writes."""
    workdir: Path = tmp_path_factory.mktemp("registry-platform")
    with LocalPlatform.start(workdir, workers=1, registry=True) as running:
        yield running


def _metadata_url(platform: LocalPlatform, server: str = "demo") -> str:
    return f"{platform.gateway_url}{WELL_KNOWN}/servers/{server}/mcp"


def _challenge(platform: LocalPlatform, server: str = "demo") -> str:
    return f'Bearer resource_metadata="{_metadata_url(platform, server)}", scope="mcp"'


def _metadata(platform: LocalPlatform, server: str = "demo") -> dict[str, Any]:
    return {
        "resource": platform.mcp_url(server),
        "authorization_servers": [platform.issuer],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
        "resource_name": server,
    }


def _post(platform: LocalPlatform, token: str | None, *, url: str | None = None) -> httpx.Response:
    headers = {"accept": ACCEPT} | ({"authorization": f"Bearer {token}"} if token is not None else {})
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    return httpx.post(url or platform.mcp_url(), headers=headers, json=body, timeout=10)


def _forms(platform: LocalPlatform, server: str = "demo") -> dict[str, str]:
    return {
        "path-inserted": _metadata_url(platform, server),
        "server-root": f"{platform.gateway_url}/servers/{server}{WELL_KNOWN}",
    }


@pytest.mark.parametrize("form", ["path-inserted", "server-root"])
def test_server_metadata_is_served_without_a_token(platform: LocalPlatform, form: str) -> None:
    response = httpx.get(_forms(platform)[form], timeout=5)
    assert response.status_code == 200
    assert response.json() == _metadata(platform)
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "public, max-age=300"


def test_head_gets_the_metadata_headers_without_a_body(platform: LocalPlatform) -> None:
    response = httpx.head(_metadata_url(platform), timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == b""


def test_metadata_paths_answer_only_get_and_head(platform: LocalPlatform) -> None:
    forms = _forms(platform)
    inserted = httpx.post(forms["path-inserted"], json={}, timeout=5)
    assert inserted.status_code == 404
    assert inserted.json()["error"]["code"] == -32601  # the catch-all's JSON-RPC 404
    # The root form is under the server's prefix: any other method is a request to the server, so a token is due.
    root = httpx.post(forms["server-root"], json={}, timeout=5)
    assert root.status_code == 401
    assert root.headers["www-authenticate"] == _challenge(platform)


@pytest.mark.parametrize("path", [WELL_KNOWN, f"{WELL_KNOWN}/servers/nowhere/mcp"])
def test_gateway_root_metadata_is_a_404_pointing_at_the_per_server_metadata(platform: LocalPlatform, path: str) -> None:
    response = httpx.get(f"{platform.gateway_url}{path}", timeout=5)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert f"{WELL_KNOWN}/servers/<name>/mcp" in response.json()["error_description"]


def test_request_without_a_token_is_told_where_the_metadata_is_and_no_error_code(platform: LocalPlatform) -> None:
    response = _post(platform, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == _challenge(platform)
    error = response.json()["error"]
    assert error["data"]["reason"] == "unauthenticated"
    assert "result" not in response.json()


@pytest.mark.parametrize(
    ("make_token", "description"),
    [
        pytest.param(lambda p: p.token(now=time.time() - 7200, ttl_seconds=600), "Jwt is expired", id="expired"),
        pytest.param(lambda p: p.token(server="finance-reports"), "Audiences in Jwt are not allowed",
                     id="another-servers-audience"),
        pytest.param(lambda p: p.token(issuer="https://evil.example"), "Jwt issuer is not configured",
                     id="another-issuer"),
    ],
)  # fmt: skip
def test_refused_token_gets_invalid_token_with_the_reason(
    platform: LocalPlatform, make_token: Any, description: str
) -> None:
    response = _post(platform, make_token(platform))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'{_challenge(platform)}, error="invalid_token", error_description="{description}"'
    )
    assert response.json()["error"]["data"]["reason"] == "invalid_token"


def test_token_in_the_query_string_is_not_accepted(platform: LocalPlatform) -> None:
    # The metadata says bearer_methods_supported: ["header"]; MCP forbids tokens in the URI.
    response = _post(platform, None, url=f"{platform.mcp_url()}?access_token={platform.token()}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == _challenge(platform)


def test_valid_token_still_reaches_the_server(platform: LocalPlatform) -> None:
    response = _post(platform, platform.token("alice"))
    assert response.status_code == 200
    assert response.json()["result"]["structuredContent"]["user"] == "alice"


class _AuthorizationServer:
    """A fake OAuth authorization server at the platform's issuer: metadata, registration, authorize, token.

    Tokens are signed by the platform's test key for the `resource` the client asks for (RFC 8707).
    """

    def __init__(self, platform: LocalPlatform):
        self.platform = platform
        self.issuer = platform.issuer
        self.authorize: dict[str, str] = {}
        self.token_requests: list[dict[str, str]] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "GET" and path == "/.well-known/oauth-authorization-server":
            return httpx2.Response(200, json={
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "registration_endpoint": f"{self.issuer}/register",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "code_challenge_methods_supported": ["S256"],
            })  # fmt: skip
        if request.method == "POST" and path == "/register":
            client = {**json.loads(request.content), "client_id": "inspector", "token_endpoint_auth_method": "none"}
            return httpx2.Response(201, json=client)
        if request.method == "POST" and path == "/token":
            form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
            self.token_requests.append(form)
            token = self.platform.token("alice", audience=form["resource"])
            return httpx2.Response(200, json={"access_token": token, "token_type": "Bearer", "expires_in": 600})
        return httpx2.Response(404)

    async def redirect(self, authorization_url: str) -> None:
        self.authorize = {key: values[0] for key, values in parse_qs(urlsplit(authorization_url).query).items()}

    async def callback(self) -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code="code-1", state=self.authorize["state"])


class _Transport(httpx2.AsyncBaseTransport):
    """The real network for the gateway, the fake authorization server for its host; records every exchange."""

    def __init__(self, authorization_server: _AuthorizationServer):
        self._real = httpx2.AsyncHTTPTransport()
        self._fake = httpx2.MockTransport(authorization_server.handle)
        self._fake_host = urlsplit(authorization_server.issuer).hostname
        self.exchanges: list[tuple[str, str, int]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        transport = self._fake if request.url.host == self._fake_host else self._real
        response = await transport.handle_async_request(request)
        self.exchanges.append((request.method, str(request.url).split("?")[0], response.status_code))
        return response

    async def aclose(self) -> None:
        await self._real.aclose()


def test_sdk_oauth_client_finds_the_metadata_gets_a_token_for_the_server_and_calls_it(platform: LocalPlatform) -> None:
    server = _AuthorizationServer(platform)
    transport = _Transport(server)
    provider = OAuthClientProvider(
        server_url=platform.mcp_url(),
        client_metadata=OAuthClientMetadata(redirect_uris=["http://127.0.0.1:1/callback"], client_name="e2e"),  # type: ignore[list-item]
        storage=MemoryTokenStorage(),
        redirect_handler=server.redirect,
        callback_handler=server.callback,
    )

    async def whoami() -> Any:
        http = httpx2.AsyncClient(auth=provider, transport=transport, timeout=10)
        async with http, Client(streamable_http_client(platform.mcp_url(), http_client=http)) as client:
            return (await client.call_tool("whoami", {})).structured_content

    assert anyio.run(whoami)["user"] == "alice"
    # The 401, then the metadata named by its WWW-Authenticate, then the authorization server it names.
    assert transport.exchanges[:3] == [
        ("POST", platform.mcp_url(), 401),
        ("GET", _metadata_url(platform), 200),
        ("GET", f"{platform.issuer}/.well-known/oauth-authorization-server", 200),
    ]
    assert server.authorize["scope"] == "mcp"  # from the challenge
    assert server.authorize["resource"] == platform.mcp_url()
    assert [form["resource"] for form in server.token_requests] == [platform.mcp_url()]


def test_registry_driven_gateway_serves_metadata_and_the_challenge(registry_platform: LocalPlatform) -> None:
    platform = registry_platform
    for url in _forms(platform).values():
        response = httpx.get(url, timeout=5)
        assert response.status_code == 200
        assert response.json() == _metadata(platform)
    assert httpx.get(f"{platform.gateway_url}{WELL_KNOWN}", timeout=5).status_code == 404

    missing = _post(platform, None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == _challenge(platform)
    expired = _post(platform, platform.token(now=time.time() - 7200, ttl_seconds=600))
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    assert _post(platform, platform.token("alice")).status_code == 200
