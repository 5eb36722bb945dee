"""The edge layer end to end: real Envoy, real authz_service, the real MCP SDK client over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from authz_service.keys import SigningKey
from portcullis.testing import LocalPlatform

pytestmark = pytest.mark.e2e

ACCEPT = "application/json, text/event-stream"


def _call(platform: LocalPlatform, token: str | None, tool: str = "whoami", **extra_headers: str) -> httpx.Response:
    headers = {"accept": ACCEPT, **extra_headers}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    return httpx.post(platform.mcp_url(), headers=headers, json=body, timeout=10)


async def _sdk_call(
    platform: LocalPlatform, token: str, mode: str, tool: str, headers: dict[str, str] | None = None
) -> Any:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}", **(headers or {})}, timeout=10)
    async with http, Client(streamable_http_client(platform.mcp_url(), http_client=http), mode=mode) as client:
        result = await client.call_tool(tool, {})
        return result.structured_content


def _sdk_error(platform: LocalPlatform, token: str, mode: str, tool: str) -> MCPError:
    """The MCP error the SDK client raises for a call (unwrapped from the client's task group)."""
    try:
        anyio.run(_sdk_call, platform, token, mode, tool)
    except MCPError as error:
        return error
    except BaseExceptionGroup as group:
        matched, _ = group.split(MCPError)
        if matched is not None:
            leaves = list(_leaves(matched))
            assert isinstance(leaves[0], MCPError)
            return leaves[0]
        raise
    raise AssertionError("the call succeeded")


def _leaves(group: BaseExceptionGroup[Any]) -> Any:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _challenge(platform: LocalPlatform) -> str:
    """The RFC 9728 challenge: where the demo server's protected-resource metadata is, and the scope to ask for."""
    metadata = f"{platform.gateway_url}/.well-known/oauth-protected-resource/servers/demo/mcp"
    return f'Bearer resource_metadata="{metadata}", scope="mcp"'


def test_request_without_token_gets_401_with_www_authenticate(platform: LocalPlatform) -> None:
    response = _call(platform, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == _challenge(platform)  # no error code without a token


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda p: p.token(now=time.time() - 7200, ttl_seconds=600), id="expired"),
        pytest.param(lambda p: SigningKey.generate().mint(
            issuer=p.issuer, subject="alice", audience=p.mcp_url(), client_id="claude-desktop"), id="wrong-signature"),
        pytest.param(lambda p: p.token(issuer="https://evil.example"), id="wrong-issuer"),
        pytest.param(lambda p: jwt.encode(
            {"iss": p.issuer, "sub": "alice", "aud": p.mcp_url(), "client_id": "claude-desktop",
             "exp": int(time.time()) + 600}, key="", algorithm="none"), id="alg-none"),
        pytest.param(lambda p: "not.a.jwt", id="malformed"),
    ],
)  # fmt: skip
def test_invalid_token_is_refused_with_401(platform: LocalPlatform, make_token: Any) -> None:
    response = _call(platform, make_token(platform))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(f'{_challenge(platform)}, error="invalid_token", ')
    assert response.json()["error"]["data"]["reason"] == "invalid_token"


def test_token_for_another_audience_never_reaches_the_server(platform: LocalPlatform) -> None:
    response = _call(platform, platform.token(audience="http://127.0.0.1:1/servers/other/mcp"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "result" not in response.text


def test_client_application_not_allowed_for_server_is_denied_with_reason(platform: LocalPlatform) -> None:
    response = _call(platform, platform.token(client="cursor"))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["data"]["reason"] == "client_not_allowed"
    assert "cursor" in error["message"]


def test_allowed_call_reaches_upstream_with_gateway_identity_not_spoofed_headers(platform: LocalPlatform) -> None:
    spoofed = {"x-portcullis-user": "root", "x-portcullis-groups": "admins", "x-portcullis-client": "evil"}
    identity = anyio.run(_sdk_call, platform, platform.token("alice"), "legacy", "whoami", spoofed)
    assert identity["user"] == "alice"
    assert identity["groups"] == "ads-eng,eng"
    assert identity["business-groups"] == "ads"
    assert identity["client"] == "claude-desktop"
    assert identity["decision-id"]


def test_forbidden_tool_is_denied_at_edge_for_new_protocol_client_by_header(platform: LocalPlatform) -> None:
    token = platform.token("bob", groups=["eng"], business_groups=["search"])
    error = _sdk_error(platform, token, "2026-07-28", "get_revenue_metrics")
    assert error.data["reason"] == "group_required"
    assert "get_revenue_metrics" in error.message
    # The same call by a member of ads-eng goes through: the denial is the policy's, not the transport's.
    assert anyio.run(_sdk_call, platform, platform.token("alice"), "2026-07-28", "get_revenue_metrics")


def test_forbidden_tool_is_denied_at_edge_for_old_protocol_client_by_body(platform: LocalPlatform) -> None:
    token = platform.token("bob", groups=["eng"], business_groups=["search"])
    error = _sdk_error(platform, token, "legacy", "get_revenue_metrics")
    assert error.data["reason"] == "group_required"


def test_header_naming_an_allowed_tool_cannot_smuggle_a_forbidden_one_in_the_body(platform: LocalPlatform) -> None:
    token = platform.token("bob", groups=["eng"], business_groups=["search"])
    response = _call(platform, token, "get_revenue_metrics", **{"mcp-method": "tools/call", "mcp-name": "whoami"})
    assert response.status_code == 400
    assert response.json()["error"]["data"]["reason"] == "mcp_header_mismatch"


def test_oversized_body_is_refused_before_authorization(platform: LocalPlatform) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"message": "x" * 200_000}}})  # fmt: skip
    response = httpx.post(
        platform.mcp_url(),
        headers={"authorization": f"Bearer {platform.token()}", "accept": ACCEPT, "content-type": "application/json"},
        content=body,
        timeout=10,
    )
    assert response.status_code == 413


def test_deeply_nested_body_is_a_400_json_rpc_error_not_an_outage(platform: LocalPlatform) -> None:
    body = b"[" * 30_000 + b"]" * 30_000  # 60 KB, under the body limit
    response = httpx.post(
        platform.mcp_url(),
        headers={"authorization": f"Bearer {platform.token()}", "accept": ACCEPT, "content-type": "application/json"},
        content=body,
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]["data"]["reason"] == "invalid_json"


def test_unknown_path_is_404_json(platform: LocalPlatform) -> None:
    response = httpx.post(f"{platform.gateway_url}/servers/nowhere/mcp", json={}, timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == -32601


def _decision_ids(platform: LocalPlatform) -> list[str]:
    """The ids of the edge decisions logged so far (the demo server's own decisions are logged as layer "server")."""
    lines = platform.decision_log.read_text().splitlines() if platform.decision_log.exists() else []
    records = [json.loads(line) for line in lines]
    return [record["decision_id"] for record in records if record["layer"] == "edge"]


def test_decision_log_has_one_line_per_decision_under_a_burst(platform: LocalPlatform) -> None:
    before = set(_decision_ids(platform))
    allowed_token = platform.token("alice")
    denied_token = platform.token("mallory", client="cursor")

    async def burst() -> list[str]:
        ids: list[str] = []
        async with httpx.AsyncClient(timeout=20) as http:

            async def one(index: int) -> None:
                token = allowed_token if index % 2 else denied_token
                body = {
                    "jsonrpc": "2.0",
                    "id": index,
                    "method": "tools/call",
                    "params": {"name": "whoami", "arguments": {}},
                }
                response = await http.post(
                    platform.mcp_url(), json=body, headers={"authorization": f"Bearer {token}", "accept": ACCEPT}
                )
                if response.status_code == 200:
                    ids.append(response.json()["result"]["structuredContent"]["decision-id"])
                else:
                    assert response.status_code == 403
                    ids.append(response.headers["x-portcullis-decision-id"])

            async with anyio.create_task_group() as group:
                for index in range(300):
                    group.start_soon(one, index)
        return ids

    made = anyio.run(burst)
    assert len(set(made)) == 300
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logged = [i for i in _decision_ids(platform) if i not in before]
        if len(logged) >= 300:
            break
        time.sleep(0.05)
    assert sorted(logged) == sorted(made)


def _settled(check: Callable[[], bool], *, timeout: float = 10.0) -> bool:
    """True once `check` holds several times in a row: every worker process has reloaded, not just one."""
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        streak = streak + 1 if check() else 0
        if streak >= 6:
            return True
        time.sleep(0.02)
    return False


def test_broken_policy_keeps_previous_revision_deciding_and_shows_in_readyz(platform: LocalPlatform) -> None:
    ready = httpx.get(f"{platform.authz_url}/readyz").json()
    revision = ready["policy_revision"]
    broken = platform.policy_dir / "zz_broken.polar"
    broken.write_text('allow(actor, "connect", server) if\n    actor.id = ;\n')
    try:
        assert _settled(lambda: "policy_error" in httpx.get(f"{platform.authz_url}/readyz").json())
        ready = httpx.get(f"{platform.authz_url}/readyz").json()
        assert "zz_broken.polar:2:" in ready["policy_error"]
        assert ready["policy_revision"] == revision
        # The previous policies still decide, both ways.
        assert _call(platform, platform.token("alice")).status_code == 200
        denied = _call(platform, platform.token(client="cursor")).json()
        assert denied["error"]["data"]["reason"] == "client_not_allowed"
        log = (platform.workdir / "authz.log").read_text()
        assert "policy reload rejected" in log and "zz_broken.polar" in log
    finally:
        broken.unlink()
    assert _settled(lambda: "policy_error" not in httpx.get(f"{platform.authz_url}/readyz").json())


def test_policy_change_is_picked_up_without_restart(platform: LocalPlatform) -> None:
    tools = platform.policy_dir / "tools.polar"
    original = tools.read_text()
    token = platform.token("alice")
    assert _call(platform, token, "echo").status_code == 200
    tools.write_text(original + '\ntool_group("demo", "echo", "nobody-has-this-group");\n')
    try:
        assert _settled(lambda: _call(platform, token, "echo").status_code == 403)
        assert _call(platform, token, "echo").json()["error"]["data"]["reason"] == "group_required"
    finally:
        tools.write_text(original)
    assert _settled(lambda: _call(platform, token, "echo").status_code == 200)


def test_authz_service_down_gives_503_never_200(platform: LocalPlatform) -> None:
    platform.stop_authz()
    try:
        for _ in range(5):
            response = _call(platform, platform.token("alice"))
            assert response.status_code == 503
    finally:
        platform.start_authz()
    # Recovers by itself once authz is back: the edge serves once its workers report SERVING; the kit, which
    # refused while it could not vouch for the revocation list (authz down longer than its 10 s bound on a busy
    # machine), answers again at its next poll of the feed (every 0.5 s).
    token = platform.token("alice")
    assert _settled(lambda: _call(platform, token).status_code == 200, timeout=5.0)


def test_metrics_aggregate_edge_decisions_over_all_workers(platform: LocalPlatform) -> None:
    for _ in range(4):
        _call(platform, platform.token("alice"))
    text = httpx.get(f"{platform.authz_url}/metrics").text
    counts = {
        line.split("{")[0] + "{" + line.split("{")[1].split("}")[0] + "}": float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("portcullis_decisions_total{")
    }
    assert counts['portcullis_decisions_total{layer="edge",result="allow"}'] >= 4


def test_grpc_health_service_reports_serving_on_every_worker(platform: LocalPlatform) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    first = int(platform.authz_env["AUTHZ_GRPC_PORT"])
    for port in range(first, first + int(platform.authz_env["AUTHZ_WORKERS"])):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 5
            while True:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert status == health_pb2.HealthCheckResponse.SERVING
