"""A kit server for real: `python -m server_kit serve` (uvicorn) on a free port, a real authz_service process
issuing tokens (client credentials; authorization code + PKCE through its login and consent pages) and deciding
with the real policies, and the real MCP SDK client over HTTP. Everything binds 127.0.0.1 and is stopped by PID.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from portcullis.processes import running, stop_process
from portcullis.testing import authz_environment, free_port, free_port_block, wait_http
from tests.server_kit.support import catalog_with_tools

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SECRET = "kit-e2e-service-credential-0123456789"
DOWNSTREAM = "http://127.0.0.1:8282"  # a resource the issuer knows (the registry's URL); nothing needs to listen
_EXTRA_TOOLS = ("revenue_by_business_group", "downstream_claims")
REDIRECT = "http://127.0.0.1:5555/callback"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Platform:
    """authz_service and one kit server (the demo tools, tests/server_kit/sample_server.py), both running."""

    issuer: str
    gateway_url: str
    kit_url: str
    authz: subprocess.Popen[bytes]
    kit_log: Path

    @property
    def resource(self) -> str:
        return f"{self.gateway_url}/servers/demo/mcp"

    def agent_token(self, resource: str | None = None) -> str:
        """A client-credentials token of the `internal-agent` client (groups: agents)."""
        response = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "scope": "mcp", "resource": resource or self.resource},
            auth=("internal-agent", "internal-agent-dev-secret"),
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def user_token(self, user: str) -> str:
        """A token of `user` for `claude-desktop`: authorization code + PKCE through the login and consent pages."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "response_type": "code",
            "client_id": "claude-desktop",
            "redirect_uri": REDIRECT,
            "scope": "mcp",
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": self.resource,
        }
        with httpx.Client(base_url=self.issuer, timeout=10) as browser:
            page = browser.get("/authorize", params=params)
            login = {"csrf": _csrf(page.text), "username": user, "password": "portcullis"}
            page = browser.post("/login", data=login)
            answer = browser.post("/consent", data={"csrf": _csrf(page.text), "decision": "approve"})
            assert answer.status_code == 303, answer.text
            code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
            exchange = {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "client_id": "claude-desktop",
                "redirect_uri": REDIRECT,
            }
            token = browser.post("/token", data=exchange)
        assert token.status_code == 200, token.text
        return str(token.json()["access_token"])


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def _kit_env(issuer: str, gateway_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KIT_DEMO_ISSUER": issuer,
        "KIT_DEMO_GATEWAY_URL": gateway_url,
        "KIT_DEMO_AUTHZ_URL": issuer,
        "KIT_DEMO_AUTHZ_CREDENTIAL": SECRET,
        "KIT_DEMO_CLIENT_SECRET": "demo-server-dev-secret",  # server.demo in config/directory.yaml
        **extra,
    }


@contextmanager
def platform(workdir: Path, **kit_env: str) -> Iterator[Platform]:
    http_port, grpc_port, kit_port, gateway_port = free_port(), free_port_block(1), free_port(), free_port()
    issuer, gateway_url = f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{gateway_port}"
    # The sample server's extra tools join the demo's catalog entry; the registry's URL is a known resource to
    # exchange tokens for.
    catalog = catalog_with_tools(workdir, "demo", [{"name": name} for name in _EXTRA_TOOLS])
    authz_env = authz_environment(
        workdir,
        http_port=http_port,
        grpc_port=grpc_port,
        gateway_url=gateway_url,
        service_credentials={"demo": SECRET},
        catalog_file=str(catalog),
        extra_resources=json.dumps([DOWNSTREAM]),
    )
    serve = [sys.executable, "-m", "server_kit", "serve", "tests.server_kit.sample_server:kit", "--port", str(kit_port)]
    with ExitStack() as stack:
        authz = stack.enter_context(
            running([sys.executable, "-m", "authz_service"], workdir / "authz.log", env=authz_env, cwd=ROOT)
        )
        wait_http(f"{issuer}/readyz", process=authz)
        env = _kit_env(issuer, gateway_url, **kit_env)
        kit = stack.enter_context(running(serve, workdir / "kit.log", env=env, cwd=ROOT))
        wait_http(f"http://127.0.0.1:{kit_port}/healthz", process=kit)
        yield Platform(issuer, gateway_url, f"http://127.0.0.1:{kit_port}", authz, workdir / "kit.log")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with platform(tmp_path_factory.mktemp("kit-live")) as started:
        yield started


Body = Callable[[Client], Awaitable[Any]]


def session(live: Platform, token: str, body: Body, **headers: str) -> Any:
    async def run() -> Any:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}", **headers}, timeout=15)
        async with http, Client(streamable_http_client(f"{live.kit_url}/mcp", http_client=http)) as client:
            return await body(client)

    return anyio.run(run)


def call(name: str, arguments: dict[str, Any]) -> Body:
    async def body(client: Client) -> CallToolResult:
        return await client.call_tool(name, arguments)

    return body


async def tool_names(client: Client) -> list[str]:
    return sorted(tool.name for tool in (await client.list_tools()).tools)


def text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def test_an_allowed_call_runs_the_tool_for_a_member_of_ads_eng(live: Platform) -> None:
    result = session(live, live.user_token("alice"), call("get_revenue_metrics", {"region": "emea"}))
    assert not result.is_error, result
    assert result.structured_content == {"result": [{"date": "2026-11-20", "region": "emea", "revenue_usd": 1_204_300}]}


def test_a_denied_call_reaches_the_client_as_a_tool_error_with_its_reason(live: Platform) -> None:
    result = session(live, live.agent_token(), call("get_revenue_metrics", {"region": "emea"}))
    assert result.is_error
    assert "access denied: this tool is reserved to specific groups (reason: group_required; decision" in text(result)


def test_tools_list_differs_between_two_callers(live: Platform) -> None:
    alice = session(live, live.user_token("alice"), tool_names)
    agent = session(live, live.agent_token(), tool_names)
    every = ["downstream_claims", "echo", "get_revenue_metrics", "revenue_by_business_group", "server_version"]
    assert alice == [*every, "whoami"]
    assert agent == [name for name in every if name != "get_revenue_metrics"] + ["whoami"]


def test_the_caller_comes_from_the_verified_token(live: Platform) -> None:
    result = session(live, live.user_token("bob"), call("whoami", {}), **{"x-portcullis-user": "mallory"})
    me = result.structured_content or {}
    assert me["user"] == "bob" and me["client_id"] == "claude-desktop" and me["business_groups"] == ["search"]


def test_a_token_for_another_audience_gets_401_with_the_challenge(live: Platform) -> None:
    token = live.agent_token(f"{live.gateway_url}/servers/finance-reports/mcp")
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    response = httpx.post(f"{live.kit_url}/mcp", json=initialize, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(
        f'Bearer resource_metadata="{live.gateway_url}/.well-known/oauth-protected-resource/servers/demo/mcp", '
        'scope="mcp", error="invalid_token"'
    )
    with pytest.raises(ExceptionGroup) as refused:  # the SDK client fails the session, wrapped in task groups
        session(live, token, tool_names)
    assert any(isinstance(error, MCPError) for error in _leaves(refused.value))


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def test_the_edge_decision_id_reaches_the_json_log_and_the_token_never_does(live: Platform) -> None:
    token = live.agent_token()
    session(live, token, call("echo", {"message": "trace me"}), **{"x-portcullis-decision-id": "edge-e2e-1"})
    lines = [json.loads(line) for line in live.kit_log.read_text().splitlines() if line.startswith("{")]
    (line,) = [entry for entry in lines if entry.get("edge_decision_id") == "edge-e2e-1" and "outcome" in entry]
    assert line["tool"] == "echo" and line["outcome"] == "ok" and line["user"] == "internal-agent"
    assert line["decision_id"] and token not in live.kit_log.read_text()
    metrics = httpx.get(f"{live.kit_url}/metrics").text
    assert 'portcullis_kit_tool_calls_total{server="demo",tool="echo"}' in metrics


def test_the_authz_service_down_denies_guarded_calls_clearly(tmp_path: Path) -> None:
    with platform(tmp_path, KIT_DEMO_DECISION_CACHE_TTL_SECONDS="0") as down:
        token = down.user_token("alice")
        assert not session(down, token, call("echo", {"message": "before"})).is_error  # keys now cached
        stop_process(down.authz)

        async def body(client: Client) -> tuple[list[str], CallToolResult, CallToolResult]:
            return (
                await tool_names(client),
                await client.call_tool("get_revenue_metrics", {"region": "emea"}),
                await client.call_tool("server_version", {}),
            )

        names, denied, version = session(down, token, body)
    assert names == ["server_version"]
    assert denied.is_error and "the authorization service is unavailable" in text(denied)
    assert "reason: authz_unavailable" in text(denied)
    assert not version.is_error


def test_a_server_with_a_guardless_tool_refuses_to_start(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "server_kit", "serve", "tests.server_kit.unguarded_server:kit"]
    env = _kit_env("http://127.0.0.1:1", "http://127.0.0.1:2", KIT_DEMO_PORT=str(free_port()))
    refused = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "refusing to start: tool(s) drop_table are neither guarded nor public" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_rows_are_filtered_by_the_callers_business_groups(live: Platform) -> None:
    alice = session(live, live.user_token("alice"), call("revenue_by_business_group", {}))
    bob = session(live, live.user_token("bob"), call("revenue_by_business_group", {}))
    groups = [[row["business_group"] for row in (r.structured_content or {})["result"]] for r in (alice, bob)]
    # Alice (business group ads) reads the confidential ads row; bob (search) only internal data; nobody here
    # belongs to finance, whose row is restricted.
    assert groups == [["ads", "search"], ["search"]]


def test_a_downstream_call_gets_an_exchanged_token_never_the_callers(live: Platform) -> None:
    token = live.user_token("alice")
    result = session(live, token, call("downstream_claims", {"resource": DOWNSTREAM}))
    assert not result.is_error, text(result)
    claims = result.structured_content or {}
    assert claims["sub"] == "alice" and claims["aud"] == DOWNSTREAM
    assert claims["client_id"] == "server.demo" and claims["act"] == {"sub": "server.demo"}
    assert claims["scope"] == "mcp" and "ads-eng" in claims["groups"]


def test_a_downstream_the_issuer_does_not_know_is_a_clear_tool_error(live: Platform) -> None:
    result = session(live, live.user_token("alice"), call("downstream_claims", {"resource": "https://elsewhere.test"}))
    assert result.is_error
    assert "the issuer refused token exchange for https://elsewhere.test: invalid_target" in text(result)


def test_without_a_client_secret_token_exchange_says_it_is_not_configured(tmp_path: Path) -> None:
    with platform(tmp_path, KIT_DEMO_CLIENT_SECRET="") as bare:
        result = session(bare, bare.user_token("alice"), call("downstream_claims", {"resource": DOWNSTREAM}))
    assert result.is_error and "token exchange is not configured for this server" in text(result)
