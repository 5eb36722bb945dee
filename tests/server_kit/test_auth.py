"""The server verifies the bearer token itself: signature, issuer, audience, expiry, scope. Health, metrics and
its RFC 9728 metadata need no token.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx2
import pytest
from starlette.applications import Starlette

from authz_service.keys import SigningKey
from portcullis.testing import free_port
from tests.server_kit import sample_server
from tests.server_kit.support import GATEWAY, ISSUER, RESOURCE, Issuer, build_app, http, mcp_client, started

METADATA_URL = f"{GATEWAY}/.well-known/oauth-protected-resource/servers/demo/mcp"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.fixture
def app(issuer: Issuer, authzen: Starlette) -> Starlette:
    return build_app(sample_server.kit, issuer, authzen)


def post(app: Starlette, token: str | None = None, **headers: str) -> httpx2.Response:
    async def run() -> httpx2.Response:
        async with started(app), http(app, token, **MCP_HEADERS, **headers) as client:
            return await client.post("/mcp", json=INITIALIZE)

    return anyio.run(run)


def get(app: Starlette, path: str) -> httpx2.Response:
    async def run() -> httpx2.Response:
        async with http(app) as client:
            return await client.get(path)

    return anyio.run(run)


def test_a_request_without_a_token_gets_401_with_the_resource_metadata_challenge(app: Starlette) -> None:
    response = post(app)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA_URL}", scope="mcp"'
    assert response.json()["error"] == "unauthorized"


def test_a_valid_token_for_this_server_is_accepted(app: Starlette, issuer: Issuer) -> None:
    response = post(app, issuer.token())
    assert response.status_code == 200, response.text
    assert response.json()["result"]["serverInfo"]["name"] == "demo"


def _other_key_token() -> str:
    return SigningKey.generate().mint(issuer=ISSUER, subject="alice", audience=RESOURCE, client_id="c")


@pytest.mark.parametrize(
    ("make", "description"),
    [
        (lambda i: i.token(audience=f"{GATEWAY}/servers/sql/mcp"), "the token was not issued for this server"),
        (lambda i: i.token(issuer="http://evil.example"), "InvalidIssuerError"),
        (lambda i: i.token(now=time.time() - 3600, ttl_seconds=600), "the token has expired"),
        (lambda i: _other_key_token(), "signed by an unknown key"),
        (lambda i: "not-a-jwt", "the token is not a JWT"),
        (lambda i: i.token(claims={"groups": "ads-eng"}), "claim 'groups' must be a list of strings"),
    ],
    ids=["other-audience", "other-issuer", "expired", "unknown-key", "garbage", "bad-claim"],
)
def test_a_refused_token_gets_401_invalid_token(app: Starlette, issuer: Issuer, make: Any, description: str) -> None:
    response = post(app, make(issuer))
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer resource_metadata="{METADATA_URL}", scope="mcp", error="invalid_token"')
    assert description in challenge and description in response.json()["error_description"]


def test_a_token_without_the_mcp_scope_gets_403_insufficient_scope(app: Starlette, issuer: Issuer) -> None:
    response = post(app, issuer.token(scope="openid profile"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_a_non_bearer_authorization_is_an_invalid_request(app: Starlette, issuer: Issuer) -> None:
    response = post(app, None, authorization=f"Basic {issuer.token()}")
    assert response.status_code == 401 and 'error="invalid_request"' in response.headers["www-authenticate"]


def test_health_metrics_and_resource_metadata_need_no_token(app: Starlette) -> None:
    assert get(app, "/healthz").json() == {"status": "ok", "server": "demo"}
    assert "portcullis_kit_tool_calls_total" in get(app, "/metrics").text
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        assert get(app, path).json() == {
            "resource": RESOURCE,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["mcp"],
            "bearer_methods_supported": ["header"],
            "resource_name": "demo",
        }


def test_the_caller_comes_from_the_token_never_from_identity_headers(app: Starlette, issuer: Issuer) -> None:
    async def run() -> dict[str, Any]:
        spoofed = {"x-portcullis-user": "mallory", "x-portcullis-groups": "ads-eng", "x-portcullis-decision-id": "e-1"}
        async with started(app), mcp_client(app, issuer.token("bob"), **spoofed) as client:
            result = await client.call_tool("whoami", {})
        assert not result.is_error, result
        return result.structured_content or {}

    me = anyio.run(run)
    assert me["user"] == "bob" and me["groups"] == ["eng", "platform"] and me["decision_id"] == "e-1"


def test_unreachable_issuer_keys_give_503_not_an_allow(issuer: Issuer, authzen: Starlette) -> None:
    app = build_app(sample_server.kit, issuer, authzen, jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json")
    response = post(app, issuer.token())
    assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"


def test_a_verified_token_is_remembered_but_a_forged_twin_is_still_refused(app: Starlette, issuer: Issuer) -> None:
    token = issuer.token()
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"

    async def run() -> list[int]:
        statuses = []
        async with started(app):
            for presented in (token, token, forged):  # the second from the verified-token cache
                async with http(app, presented, **MCP_HEADERS) as client:
                    statuses.append((await client.post("/mcp", json=INITIALIZE)).status_code)
        return statuses

    assert anyio.run(run) == [200, 200, 401]
