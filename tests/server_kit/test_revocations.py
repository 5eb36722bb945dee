"""The kit refuses a revoked token on its own port: it follows the issuer's revocation feed and checks the token's
id on every request, after its verified-token cache, failing closed when the feed goes quiet.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import jwt
import pytest
from starlette.applications import Starlette

from tests.server_kit import sample_server
from tests.server_kit.support import ISSUER, RESOURCE, Issuer, build_app, http, started

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
FAST: dict[str, Any] = {"revocation_poll_seconds": 0.05}


@pytest.fixture(autouse=True)
def clean_feed(issuer: Issuer) -> None:
    issuer.jwks.revoked.clear()
    issuer.jwks.feed_down = False


async def _post(app: Starlette, token: str) -> tuple[int, dict[str, Any]]:
    async with http(app, token, **MCP_HEADERS) as client:
        response = await client.post("/mcp", json=INITIALIZE)
    return response.status_code, response.json() if response.status_code != 200 else {}


async def _until(app: Starlette, token: str, status: int, seconds: float = 3.0) -> tuple[int, dict[str, Any]]:
    """Post until the answer has `status`, with a deadline; the last answer."""
    deadline = time.monotonic() + seconds
    while True:
        answer = await _post(app, token)
        if answer[0] == status or time.monotonic() > deadline:
            return answer
        await anyio.sleep(0.02)


def test_a_revoked_token_is_refused_even_while_the_verified_token_cache_holds_it(
    issuer: Issuer, authzen: Starlette
) -> None:
    app = build_app(sample_server.kit, issuer, authzen, **FAST)
    token = issuer.token()
    claims = jwt.decode(token, options={"verify_signature": False})

    async def run() -> tuple[int, tuple[int, dict[str, Any]], tuple[int, dict[str, Any]]]:
        async with started(app):
            first = (await _post(app, token))[0]  # verified and cached
            issuer.jwks.revoke(claims["jti"], claims["exp"])
            refused = await _until(app, token, 401)
            other = await _post(app, issuer.token())  # another token of the same person still works
            return first, refused, other

    first, (status, body), other = anyio.run(run)
    assert first == 200
    assert status == 401, body
    assert body == {"error": "invalid_token", "error_description": "the token was revoked"}
    assert other[0] == 200


def test_a_token_without_an_id_is_refused_since_it_could_never_be_revoked(issuer: Issuer, authzen: Starlette) -> None:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "alice", "aud": RESOURCE, "iat": now, "exp": now + 600, "scope": "mcp",
              "client_id": "claude-desktop", "groups": ["eng"], "business_groups": ["ads"]}  # fmt: skip
    app = build_app(sample_server.kit, issuer, authzen)

    async def run() -> list[tuple[int, dict[str, Any]]]:
        async with started(app):
            return [await _post(app, issuer.key.sign({**claims, **extra})) for extra in ({}, {"jti": ["x"]})]

    for status, body in anyio.run(run):
        assert status == 401 and body["error"] == "invalid_token"


def test_the_kit_answers_503_when_the_feed_is_silent_longer_than_its_bound(issuer: Issuer, authzen: Starlette) -> None:
    app = build_app(sample_server.kit, issuer, authzen, revocation_max_staleness_seconds=0.3, **FAST)
    token = issuer.token()

    async def run() -> tuple[int, tuple[int, dict[str, Any]], int]:
        async with started(app):
            before = (await _post(app, token))[0]
            issuer.jwks.feed_down = True
            during = await _until(app, token, 503)
            issuer.jwks.feed_down = False
            after = (await _until(app, token, 200))[0]
            return before, during, after

    before, (status, body), after = anyio.run(run)
    assert before == 200
    assert status == 503 and body["error"] == "temporarily_unavailable", body
    assert after == 200


def test_a_kit_whose_feed_never_answered_refuses_tokens_with_503(issuer: Issuer, authzen: Starlette) -> None:
    issuer.jwks.feed_down = True
    app = build_app(sample_server.kit, issuer, authzen, **FAST)

    async def run() -> tuple[int, dict[str, Any]]:
        with anyio.fail_after(10):
            async with started(app):  # start-up waits a little for the first list, then serves
                return await _post(app, issuer.token())

    status, body = anyio.run(run)
    assert status == 503 and body["error"] == "temporarily_unavailable"
