"""The demo server on the server kit, end to end: the real Envoy, the real registry and authz_service, tokens from
the platform's own authorization server (authorization code + PKCE for people, client credentials for the
agent) and the real `mcp` SDK client.

Both layers decide with the same policies: the edge on the server and the tool a request names, the server on
each guarded tool it runs (and on what `tools/list` shows). The server trusts no identity header: a request
straight to its port, past the gateway, is verified the same way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp_types import CallToolResult

from portcullis.testing import LocalPlatform, free_port
from tests.e2e.sdk import call, mcp_error, session, text, tool_names

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ACCEPT = "application/json, text/event-stream"
_DECISION = re.compile(r"decision ([\w-]+)\)")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    workdir: Path = tmp_path_factory.mktemp("kit-platform")
    with LocalPlatform.start(workdir, workers=1, identity=True, registry=True) as running:
        yield running


def _logged(platform: LocalPlatform, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first decision-log record that `match`es, waiting for the log's writer thread (with a deadline)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if platform.decision_log.exists():
            for line in platform.decision_log.read_text().splitlines():
                record: dict[str, Any] = json.loads(line)
                if match(record):
                    return record
        time.sleep(0.05)
    raise AssertionError("no such decision in the decision log")


def _post(url: str, headers: dict[str, str]) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    return httpx.post(url, headers={"accept": ACCEPT, **headers}, json=body, timeout=10)


def test_allowed_call_is_decided_by_both_layers_and_the_server_knows_the_edge_decision(
    platform: LocalPlatform,
) -> None:
    token = platform.user_token("alice")
    me = session(platform.mcp_url(), token, call("whoami")).structured_content
    assert me["user"] == "alice" and me["email"] == "alice@example.com" and me["client"] == "claude-desktop"
    assert me["groups"] == "ads-eng,eng" and me["business-groups"] == "ads"
    edge_id = me["decision-id"]
    edge = _logged(platform, lambda record: record["decision_id"] == edge_id)
    assert edge["layer"] == "edge" and edge["result"] == "allow"
    server = _logged(
        platform,
        lambda record: record["layer"] == "server" and record.get("context", {}).get("edge_decision_id") == edge_id,
    )
    assert server["resource"] == {"type": "tool", "server": "demo", "name": "whoami"}
    assert server["actor"]["id"] == "alice" and server["result"] == "allow"

    revenue = session(platform.mcp_url(), token, call("get_revenue_metrics", {"region": "emea"}))
    assert not revenue.is_error, revenue
    assert revenue.structured_content == {
        "result": [{"date": "2026-11-20", "region": "emea", "revenue_usd": 1_204_300}]
    }


def test_denied_call_has_its_reason_at_the_edge_and_at_the_server_itself(platform: LocalPlatform) -> None:
    token = platform.user_token("bob")  # eng and platform; business group search: not ads-eng
    at_edge = mcp_error(platform.mcp_url(), token, call("get_revenue_metrics"))
    assert at_edge.data["reason"] == "group_required" and "get_revenue_metrics" in at_edge.message

    # Past the gateway, with the same valid token, the server decides on its own and refuses too.
    at_server = session(platform.demo_url, token, call("get_revenue_metrics"))
    assert at_server.is_error
    message = text(at_server)
    assert "access denied: this tool is reserved to specific groups (reason: group_required; decision " in message
    match = _DECISION.search(message)
    assert match, message
    record = _logged(platform, lambda record: record["decision_id"] == match.group(1))
    assert record["layer"] == "server" and record["result"] == "deny" and record["reason"] == "group_required"
    assert record["actor"]["id"] == "bob" and record["resource"]["name"] == "get_revenue_metrics"


def test_tools_list_shows_each_caller_only_the_tools_it_may_call(platform: LocalPlatform) -> None:
    alice = session(platform.mcp_url(), platform.user_token("alice"), tool_names)
    bob = session(platform.mcp_url(), platform.user_token("bob"), tool_names)
    agent = session(platform.mcp_url(), platform.agent_token(), tool_names)
    assert alice == ["echo", "get_revenue_metrics", "whoami"]
    assert bob == ["echo", "whoami"]
    assert agent == ["echo", "whoami"]


def test_a_request_straight_to_the_server_port_is_verified_like_one_through_the_gateway(
    platform: LocalPlatform,
) -> None:
    spoofed = {"x-portcullis-user": "root", "x-portcullis-groups": "ads-eng", "x-portcullis-business-groups": "ads"}
    challenge = (
        f'Bearer resource_metadata="{platform.gateway_url}/.well-known/oauth-protected-resource/servers/demo/mcp", '
        'scope="mcp"'
    )
    missing = _post(platform.demo_url, spoofed)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == challenge  # identity headers are no credential
    for token in (
        platform.agent_token(resource=platform.registry_url),  # the platform's token, for another audience
        platform.token("alice"),  # signed by a key the issuer never published
    ):
        refused = _post(platform.demo_url, {"authorization": f"Bearer {token}", **spoofed})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith(f'{challenge}, error="invalid_token"')
        assert "result" not in refused.text

    me = session(platform.demo_url, platform.user_token("bob"), call("whoami"), headers=spoofed).structured_content
    assert me["user"] == "bob" and me["groups"] == "eng,platform" and me["business-groups"] == "search"
    assert me["decision-id"] == ""  # no edge decision: the gateway was not on the way


def test_authz_service_down_denies_clearly_at_the_gateway_and_at_the_server(platform: LocalPlatform) -> None:
    token = platform.user_token("carol")  # a caller whose whoami no earlier test decided (no cached decision)
    # The server has the issuer's signing key cached once it verified any token.
    assert session(platform.demo_url, platform.agent_token(), tool_names) == ["echo", "whoami"]
    platform.stop_authz()
    try:
        through_gateway = _post(platform.mcp_url(), {"authorization": f"Bearer {token}"})
        assert through_gateway.status_code == 503 and "result" not in through_gateway.text

        async def body(client: Client) -> tuple[list[str], CallToolResult]:
            return await tool_names(client), await client.call_tool("whoami", {})

        listed, denied = session(platform.demo_url, token, body)
        assert listed == []  # nothing the policy cannot confirm is listed
        assert denied.is_error
        assert "the authorization service is unavailable, so the call was denied" in text(denied)
        assert "reason: authz_unavailable" in text(denied)
    finally:
        platform.start_authz()
    # Failures are never cached: the same call goes through as soon as the service is back.
    recovered = session(platform.demo_url, token, call("whoami"))
    assert not recovered.is_error and recovered.structured_content["user"] == "carol"


def test_the_demo_server_refuses_to_start_without_its_service_credential(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("KIT_DEMO_")}
    command = [sys.executable, "-m", "servers.demo", "--port", str(free_port())]
    refused = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "servers.demo: KIT_DEMO_AUTHZ_CREDENTIAL is required: this server's service credential for the AuthZEN API"
    ]
