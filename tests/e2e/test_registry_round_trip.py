"""The registry drives the platform: approve -> reachable through the real Envoy, retire -> unreachable.

Real processes: the registry (SQLite), authz_service following its snapshot, the demo server, and Envoy whose
routes `GatewaySync` keeps in step with the snapshot. The client is the real `mcp` SDK over HTTP. The published
server is served by a second demo process whose audience is the new route: a kit server accepts only tokens
issued for the route it serves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from portcullis.testing import SNAPSHOT_SECRET, LocalPlatform, free_port

NAME = "com.portcullis.ads/ad-insights"
ROUTE = "ad-insights"
REVIEWERS = {"dana": ("security", ["security-reviewers"]), "erin": ("legal", ["legal-privacy"]),
             "frank": ("genai", ["genai-council"])}  # fmt: skip


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    workdir: Path = tmp_path_factory.mktemp("registry-platform")
    with LocalPlatform.start(workdir, workers=1, registry=True) as running:
        yield running


def _eventually(check: Callable[[], bool], *, timeout: float = 10.0) -> float:
    """Seconds until `check` holds; fails the test past the deadline."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout}s")


async def _whoami(platform: LocalPlatform, route: str) -> dict[str, Any]:
    token = platform.token("alice", server=route)
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=10)
    async with http, Client(streamable_http_client(platform.mcp_url(route), http_client=http)) as client:
        result = await client.call_tool("whoami", {})
    assert not result.is_error
    payload: dict[str, Any] = json.loads(result.content[0].text)  # type: ignore[union-attr]
    return payload


def _post(platform: LocalPlatform, route: str) -> int:
    response = httpx.post(
        platform.mcp_url(route),
        headers={
            "Authorization": f"Bearer {platform.token('alice', server=route)}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
        timeout=5,
    )
    return response.status_code


def _registry(
    platform: LocalPlatform, method: str, path: str, user: str, groups: list[str], body: Any
) -> httpx.Response:
    token = platform.registry_token(user, groups=groups)
    response = httpx.request(
        method, f"{platform.registry_url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response


def _server_json(upstream: str) -> dict[str, Any]:
    return {
        "name": NAME,
        "description": "Campaign insights, served by the demo backend for this test.",
        "version": "1.0.0",
        "_meta": {
            "dev.portcullis/governance": {
                "owner_team": "ads-eng",
                "allowed_clients": ["claude-desktop"],
                "upstream": upstream,
                "tools": [{"name": "whoami", "description": "who am I"}],
            }
        },
    }


def _revision(platform: LocalPlatform) -> str:
    snapshot = httpx.get(
        f"{platform.registry_url}/v0.1/x/portcullis/catalog", headers={"Authorization": f"Bearer {SNAPSHOT_SECRET}"}
    ).json()
    return str(snapshot["revision"])


def test_seeded_demo_server_is_served_and_decisions_record_the_registry_revision(platform: LocalPlatform) -> None:
    assert anyio.run(_whoami, platform, "demo")["user"] == "alice"
    revision = _revision(platform)
    lines = [json.loads(line) for line in platform.decision_log.read_text().splitlines()]
    assert lines and {line["catalog_revision"] for line in lines[-2:]} == {revision}


def test_approving_makes_a_server_reachable_and_retiring_makes_it_unreachable_without_restart(
    platform: LocalPlatform,
) -> None:
    envoy_pid = platform.processes["envoy"].pid
    port = free_port()
    platform.start_demo(port, name=f"demo-{ROUTE}", resource=platform.mcp_url(ROUTE))
    _registry(platform, "POST", "/v0.1/publish", "alice", ["ads-eng"], _server_json(f"127.0.0.1:{port}"))
    assert platform.sync is not None
    assert platform.sync.wait_for_revision(_revision(platform), timeout=10)  # the gateway saw the publication...
    assert _post(platform, ROUTE) == 404  # ...and a server pending review stays unrouted

    encoded = NAME.replace("/", "%2F")
    for user, (review, groups) in REVIEWERS.items():
        _registry(
            platform, "POST", f"/v0.1/x/portcullis/servers/{encoded}/versions/1.0.0/reviews", user, groups,
            {"review": review, "decision": "approve", "reason": "checked"},
        )  # fmt: skip
    approved_after = _eventually(lambda: _post(platform, ROUTE) == 200)
    assert anyio.run(_whoami, platform, ROUTE)["user"] == "alice"

    _registry(
        platform, "PATCH", f"/v0.1/servers/{encoded}/versions/1.0.0/status", "alice", ["ads-eng"],
        {"status": "deleted", "statusMessage": "retired by its team"},
    )  # fmt: skip
    retired_after = _eventually(lambda: _post(platform, ROUTE) == 404)
    assert platform.processes["envoy"].pid == envoy_pid and platform.processes["envoy"].poll() is None
    assert _post(platform, "demo") == 200
    print(f"approve -> reachable in {approved_after:.2f}s; retire -> unreachable in {retired_after:.2f}s")
