"""Real MCP clients nobody here wrote get their tokens from the platform's own authorization server and call
tools through the real Envoy: the `mcp` SDK's OAuthClientProvider (discovery from the gateway's 401, dynamic
registration, authorization code + PKCE with the browser step done by following the login and consent forms)
and its client-credentials provider. The registry's web UI signs people in through the same server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
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
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from portcullis.testing import LocalPlatform, MemoryTokenStorage

pytestmark = pytest.mark.e2e
INSPECTOR_DIR = Path(__file__).parent / "inspector"  # package.json + lock pin @modelcontextprotocol/inspector
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
REDIRECT = "http://127.0.0.1:47123/callback"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    workdir: Path = tmp_path_factory.mktemp("oauth-platform")
    with LocalPlatform.start(workdir, workers=2, identity=True, registry=True) as running:
        yield running


class Browser:
    """The person at the browser: opens the authorization URL, signs in, allows, and hands back the redirect."""

    def __init__(self, user: str, password: str = "portcullis"):
        self.user = user
        self.password = password
        self.result: AuthorizationCodeResult | None = None
        self.visited: list[str] = []

    async def open(self, authorization_url: str) -> None:
        self.visited.append(authorization_url)
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await browser.get(authorization_url)
            assert page.status_code == 200, page.text
            base = f"{urlsplit(authorization_url).scheme}://{urlsplit(authorization_url).netloc}"
            login = {"csrf": _csrf(page.text), "username": self.user, "password": self.password}
            page = await browser.post(f"{base}/login", data=login)
            assert page.status_code == 200, page.text
            answer = await browser.post(f"{base}/consent", data={"csrf": _csrf(page.text), "decision": "approve"})
            assert answer.status_code == 303, answer.text
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        self.result = AuthorizationCodeResult(code=query["code"][0], state=query["state"][0], iss=query["iss"][0])

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field"
    return match.group(1)


async def _call_whoami(url: str, auth: httpx2.Auth) -> tuple[list[str], dict[str, Any]]:
    http = httpx2.AsyncClient(auth=auth, timeout=15)
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    payload: dict[str, Any] = result.structured_content or {}
    return tools, payload


def test_sdk_oauth_client_registers_signs_in_and_calls_a_tool_through_the_gateway(platform: LocalPlatform) -> None:
    storage = MemoryTokenStorage()
    browser = Browser("alice")
    provider = OAuthClientProvider(
        server_url=platform.mcp_url("demo"),
        client_metadata=OAuthClientMetadata(
            client_name="SDK e2e",
            redirect_uris=[REDIRECT],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.open,
        callback_handler=browser.callback,
    )
    tools, me = anyio.run(_call_whoami, platform.mcp_url("demo"), provider)
    assert "whoami" in tools
    assert me["user"] == "alice" and me["business-groups"] == "ads"
    assert storage.client is not None and storage.client.client_id.startswith("dyn-")
    assert me["client"] == storage.client.client_id
    query = parse_qs(urlsplit(browser.visited[0]).query)
    assert query["resource"] == [platform.mcp_url("demo")] and query["code_challenge_method"] == ["S256"]
    assert storage.tokens is not None and storage.tokens.refresh_token


def test_sdk_client_credentials_provider_calls_a_tool_without_a_browser(platform: LocalPlatform) -> None:
    provider = ClientCredentialsOAuthProvider(
        server_url=platform.mcp_url("demo"),
        storage=MemoryTokenStorage(),
        client_id="internal-agent",
        client_secret="internal-agent-dev-secret",
        scope="mcp",
        issuer=platform.issuer,
    )
    tools, me = anyio.run(_call_whoami, platform.mcp_url("demo"), provider)
    assert "whoami" in tools and me["user"] == "internal-agent" and me["client"] == "internal-agent"


def test_a_token_for_another_server_is_refused_at_the_gateway(platform: LocalPlatform) -> None:
    token = httpx.post(
        f"{platform.issuer}/token",
        data={"grant_type": "client_credentials", "resource": platform.registry_url or platform.issuer},
        auth=("internal-agent", "internal-agent-dev-secret"),
    ).json()["access_token"]
    response = httpx.post(
        platform.mcp_url("demo"),
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert token not in (platform.workdir / "authz.log").read_text()


def test_the_registry_web_ui_signs_people_in_through_the_authorization_server(platform: LocalPlatform) -> None:
    with httpx.Client(timeout=10) as browser:
        start = browser.get(f"{platform.registry_url}/ui/login?next=/ui/reviews", follow_redirects=True)
        assert start.url.path == "/authorize" and str(start.url).startswith(platform.issuer), start.url
        assert parse_qs(start.url.query.decode())["resource"] == [platform.registry_url]
        consent = browser.post(
            f"{platform.issuer}/login", data={"csrf": _csrf(start.text), "username": "dana", "password": "portcullis"}
        )
        assert "Portcullis registry" in consent.text
        back = browser.post(
            f"{platform.issuer}/consent", data={"csrf": _csrf(consent.text), "decision": "approve"},
            follow_redirects=True,
        )  # fmt: skip
        assert back.status_code == 200 and back.url.path == "/ui/reviews", back.text
        assert "Dana Diaz" in back.text
        forged = browser.get(f"{platform.registry_url}/auth/callback?code=x&state=forged&iss={platform.issuer}")
        assert forged.status_code == 400


def test_a_revoked_access_token_is_refused_at_the_gateway_within_seconds(platform: LocalPlatform) -> None:
    agent = ("internal-agent", "internal-agent-dev-secret")
    data = {"grant_type": "client_credentials", "resource": platform.mcp_url("demo")}
    token = httpx.post(f"{platform.issuer}/token", data=data, auth=agent).json()["access_token"]

    def status() -> int:
        response = httpx.post(
            platform.mcp_url("demo"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        return response.status_code

    assert status() == 200
    assert httpx.post(f"{platform.issuer}/revoke", data={"token": token}, auth=agent).status_code == 200
    deadline = time.monotonic() + 5
    while status() != 401:
        assert time.monotonic() < deadline, "the revoked token still passes the gateway"
        time.sleep(0.1)


def _inspector() -> Path:
    """The pinned MCP Inspector CLI, installed from its lock file on first use (needs npm)."""
    binary = INSPECTOR_DIR / "node_modules" / ".bin" / "mcp-inspector"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("PORTCULLIS_REQUIRE_INSPECTOR") == "1":
            pytest.fail("npm is required for the MCP Inspector test")
        pytest.skip("npm is not installed (set PORTCULLIS_REQUIRE_INSPECTOR=1 to make this a failure)")
    subprocess.run(
        [npm, "ci", "--engine-strict=false", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=INSPECTOR_DIR, check=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return binary


def test_mcp_inspector_cli_lists_the_tools_through_the_gateway(platform: LocalPlatform, tmp_path: Path) -> None:
    binary = _inspector()
    token = httpx.post(
        f"{platform.issuer}/token",
        data={"grant_type": "client_credentials", "resource": platform.mcp_url("demo")},
        auth=("internal-agent", "internal-agent-dev-secret"),
    ).json()["access_token"]

    def inspector(*headers: str) -> subprocess.CompletedProcess[str]:
        command = [str(binary), "--cli", platform.mcp_url("demo"), "--transport", "http", "--method", "tools/list"]
        for header in headers:
            command += ["--header", header]
        # The working directory's parent must hold no package.json (an Inspector 1.0 quirk): a pytest tmp dir.
        return subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )

    listed = inspector(f"Authorization: Bearer {token}")
    assert listed.returncode == 0, listed.stderr
    names = {tool["name"] for tool in json.loads(listed.stdout)["tools"]}
    # The demo server lists only what the caller may call: the agent is not in ads-eng.
    assert names == {"whoami", "echo"}
    refused = inspector()
    assert refused.returncode != 0 and "unauthenticated" in refused.stderr
