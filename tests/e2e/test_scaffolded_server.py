"""The pipeline's proof: a server scaffolded a moment ago, validated, deployed to the registry, reviewed and
approved, then reached through the real Envoy by the real MCP SDK client.

Real processes: the registry (SQLite), authz_service following its snapshot, Envoy whose routes follow the
same snapshot, and the new server under `python -m server_kit serve`. Reviews are signed through the
registry's API by members of each review group, as they would be in its UI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from portcullis.cli import main
from portcullis.processes import stop_process
from portcullis.testing import LocalPlatform, free_port, service_secret, wait_http
from portcullis.up import kit_server_environment

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NAME = "com.portcullis.ads/insights"
REVIEWERS = {"dana": ("security", ["security-reviewers"]), "erin": ("legal", ["legal-privacy"]),
             "frank": ("genai", ["genai-council"])}  # fmt: skip
ALICE = {"groups": ["eng", "ads-eng"], "business_groups": ["ads"]}
BOB = {"groups": ["eng"], "business_groups": ["search"]}


def _scaffold(servers: Path, port: int) -> Path:
    command = ["server", "new", "insights", "--path", str(servers), "--namespace", "com.portcullis.ads"]
    assert main([*command, "--owner-team", "ads-eng", "--business-group", "ads", "--port", str(port)]) == 0
    folder = servers / "insights"
    # The author marks the sample tool as serving confidential ads data.
    document = json.loads((folder / "server.json").read_text())
    document["_meta"]["dev.portcullis/governance"]["tools"][0] |= {
        "sensitivity": "confidential",
        "business_groups": ["ads"],
    }
    (folder / "server.json").write_text(json.dumps(document, indent=2))
    return folder


def _serve(platform: LocalPlatform, servers: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(servers),
        **kit_server_environment(
            "insights",
            issuer=platform.issuer,
            jwks_url=platform.jwks_url,
            resource=platform.mcp_url("insights"),
            authz_url=platform.authz_url,
            authz_credential=service_secret("insights"),
            revocation_url=platform.revocation_url,
        ),
    }
    command = [sys.executable, "-m", "server_kit", "serve", "insights.server:kit", "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=servers)
    wait_http(f"http://127.0.0.1:{port}/healthz", process=process)
    return process


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalPlatform, Path]]:
    workdir: Path = tmp_path_factory.mktemp("scaffold-platform")
    port = free_port()
    with LocalPlatform.start(workdir, workers=1, registry=True, servers=["insights"]) as platform:
        folder = _scaffold(workdir / "servers", port)
        assert main(["server", "validate", str(folder)]) == 0
        token = platform.registry_token("alice", groups=["ads-eng"])
        deploy = ["server", "deploy", str(folder), "--registry", platform.registry_url, "--token", token]
        assert main([*deploy, "--issuer", platform.issuer, "--gateway-url", platform.gateway_url]) == 0
        assert _status(platform, "alice") == "pending_review"
        assert _post(platform, "alice") == 404  # pending review: not routed
        for user, (review, groups) in REVIEWERS.items():
            _sign(platform, user, groups, review)
        assert _status(platform, "alice") == "approved"
        server = _serve(platform, workdir / "servers", port, workdir / "insights.log")
        platform.processes["insights"] = server
        deadline = time.monotonic() + 15
        while _post(platform, "alice") == 404:  # the gateway follows the registry's snapshot
            assert time.monotonic() < deadline, "the approved server was never routed"
            time.sleep(0.1)
        yield platform, folder


def _status(platform: LocalPlatform, user: str) -> str:
    response = httpx.get(f"{platform.registry_url}/v0.1/servers/{NAME.replace('/', '%2F')}/versions/0.1.0",
                         params={"lifecycle": "pending_review"}, timeout=5)  # fmt: skip
    meta = response.json()["_meta"]["dev.portcullis/governance"]
    return str(meta["lifecycle"])


def _sign(platform: LocalPlatform, user: str, groups: list[str], review: str) -> None:
    path = f"/v0.1/x/portcullis/servers/{NAME.replace('/', '%2F')}/versions/0.1.0/reviews"
    token = platform.registry_token(user, groups=groups)
    body = {"review": review, "decision": "approve", "reason": "scaffold e2e"}
    response = httpx.post(f"{platform.registry_url}{path}", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


def _person(platform: LocalPlatform, user: str) -> str:
    facts = ALICE if user == "alice" else BOB
    return platform.token(user, server="insights", groups=facts["groups"], business_groups=facts["business_groups"])


def _post(platform: LocalPlatform, user: str) -> int:
    response = httpx.post(
        platform.mcp_url("insights"),
        headers={
            "Authorization": f"Bearer {_person(platform, user)}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        timeout=5,
    )
    return response.status_code


def _session(platform: LocalPlatform, user: str, tool: str | None) -> Any:
    token = _person(platform, user)

    async def run() -> Any:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=15)
        async with http, Client(streamable_http_client(platform.mcp_url("insights"), http_client=http)) as client:
            if tool is None:
                return sorted(t.name for t in (await client.list_tools()).tools)
            return await client.call_tool(tool, {"topic": "campaigns"})

    return anyio.run(run)


def _text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def test_the_deployed_server_answers_an_allowed_call_through_envoy(deployed: tuple[LocalPlatform, Path]) -> None:
    platform, _ = deployed
    result = _session(platform, "alice", "lookup")
    assert not result.is_error, _text(result)
    assert result.structured_content["asked_by"] == "alice"


def test_a_denied_call_reaches_the_client_with_its_reason(deployed: tuple[LocalPlatform, Path]) -> None:
    platform, _ = deployed
    # The gateway reads the tool name and decides first (layer 1 can decide per tool): bob's client gets the
    # JSON-RPC error the edge answers, with the policy's reason in words.
    with pytest.raises(ExceptionGroup) as denied:
        _session(platform, "bob", "lookup")
    (error,) = [leaf for leaf in _leaves(denied.value) if isinstance(leaf, MCPError)]
    assert "this tool serves business groups you are not a member of" in str(error)


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def test_tools_list_differs_between_two_people(deployed: tuple[LocalPlatform, Path]) -> None:
    platform, _ = deployed
    assert _session(platform, "alice", None) == ["lookup"]
    assert _session(platform, "bob", None) == []


def test_deploy_wrote_the_route_compose_service_and_kubernetes_manifests(deployed: tuple[LocalPlatform, Path]) -> None:
    _, folder = deployed
    kinds = [doc["kind"] for doc in yaml.safe_load_all((folder / "deploy" / "kubernetes.yaml").read_text())]
    assert kinds == ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
    assert "insights" in yaml.safe_load((folder / "deploy" / "compose.yaml").read_text())["services"]
    assert "/servers/insights/mcp" in (folder / "deploy" / "gateway-route.yaml").read_text()


def test_a_guardless_tool_refuses_start_up(deployed: tuple[LocalPlatform, Path], tmp_path: Path) -> None:
    _, folder = deployed
    broken = tmp_path / "servers"
    shutil.copytree(folder, broken / "insights")
    with (broken / "insights" / "server.py").open("a") as source:
        source.write("\n\n@kit.tool()\ndef drop_campaigns() -> None:\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(broken), "KIT_INSIGHTS_AUTHZ_CREDENTIAL": service_secret("insights")}
    command = [sys.executable, "-m", "server_kit", "serve", "insights.server:kit", "--port", str(free_port())]
    refused = subprocess.run(command, env=env, cwd=broken, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "refusing to start: tool(s) drop_campaigns are neither guarded nor public" in refused.stderr


def test_with_authz_service_down_the_call_is_denied_clearly(deployed: tuple[LocalPlatform, Path]) -> None:
    platform, _ = deployed  # runs last in this module: it stops the platform's authz_service
    stop_process(platform.processes.pop("authz"))
    response = httpx.post(
        platform.mcp_url("insights"),
        headers={
            "Authorization": f"Bearer {_person(platform, 'alice')}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "lookup", "arguments": {}}},
        timeout=5,
    )
    # Fail closed and distinct from a policy denial (403): the tool never ran. (Envoy's ext_authz error reply
    # has no body; the server itself, asked directly, says "the authorization service is unavailable".)
    assert response.status_code == 503 and "result" not in response.text
