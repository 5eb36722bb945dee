"""Validate first, consume last: a token request refused for its own mistake leaves the code or refresh token
usable, so the client's corrected retry is not mistaken for reuse (which revokes the whole family).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.authz_service.identity_support import (
    DEMO,
    REDIRECT,
    REGISTRY,
    AuthServer,
    build_server,
    code_flow,
    exchange_code,
)


@pytest.fixture
def server(tmp_path: Path) -> AuthServer:
    return build_server(tmp_path)


def _refresh(server: AuthServer, token: str, **extra: str) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "claude-desktop", **extra}
    return server.client.post("/token", data=data)


def _tokens(server: AuthServer, scope: str = "mcp") -> dict[str, Any]:
    code, verifier = code_flow(server, scope=scope)
    body: dict[str, Any] = exchange_code(server, code, verifier).json()
    return body


@pytest.mark.parametrize(
    ("mistake", "error"),
    [
        ({"resource": REGISTRY}, "invalid_target"),  # the review's finding
        ({"resource": "https://unknown.example/mcp"}, "invalid_target"),
        ({"resource": "http://127.0.0.1:8080@attacker.example/servers/demo/mcp"}, "invalid_target"),
        ({"scope": "mcp openid"}, "invalid_scope"),
    ],
)
def test_a_refused_refresh_leaves_the_refresh_token_and_its_family_alive(
    server: AuthServer, mistake: dict[str, str], error: str
) -> None:
    first = _tokens(server)
    refused = _refresh(server, first["refresh_token"], **mistake)
    assert refused.status_code == 400 and refused.json()["error"] == error
    retry = _refresh(server, first["refresh_token"], resource=DEMO)
    assert retry.status_code == 200, retry.text  # not mistaken for reuse
    assert server.claims(retry.json()["access_token"])["sub"] == "alice"
    assert _refresh(server, retry.json()["refresh_token"]).status_code == 200  # the family was not revoked


def test_a_refresh_token_is_still_single_use_and_reuse_still_revokes_the_family(server: AuthServer) -> None:
    first = _tokens(server)
    second = _refresh(server, first["refresh_token"]).json()
    assert _refresh(server, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert _refresh(server, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_another_clients_refresh_token_is_refused_without_touching_it(server: AuthServer) -> None:
    first = _tokens(server)
    stolen = server.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "vscode"}
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert _refresh(server, first["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "mistake",
    [
        {"resource": REGISTRY},
        {"redirect_uri": "http://127.0.0.1:5555/other"},
        {"code_verifier": "x" * 43},
    ],
)
def test_a_refused_code_redemption_leaves_the_code_to_its_client(server: AuthServer, mistake: dict[str, str]) -> None:
    code, verifier = code_flow(server)
    extra = {k: v for k, v in mistake.items() if k not in ("redirect_uri", "code_verifier")}
    refused = exchange_code(
        server,
        code,
        mistake.get("code_verifier", verifier),
        redirect_uri=mistake.get("redirect_uri", REDIRECT),
        **extra,
    )
    assert refused.status_code == 400 and "access_token" not in refused.json()
    ok = exchange_code(server, code, verifier)
    assert ok.status_code == 200, ok.text
    assert exchange_code(server, code, verifier).json()["error"] == "invalid_grant"  # and then it is used
