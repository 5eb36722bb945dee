"""A kit server in-process, spoken to by the real MCP SDK client over its ASGI app, deciding with the real
policies through authz_service's AuthZEN app (also in-process).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from starlette.applications import Starlette

from server_kit import Caller, Kit, guarded, public
from server_kit.observability import JsonFormatter
from tests.server_kit import sample_server
from tests.server_kit.support import AuthzenRecorder, Issuer, build_app, mcp_client, started

Session = Callable[[Client], Awaitable[Any]]


def session(app: Starlette, token: str, body: Session, **headers: str) -> Any:
    async def run() -> Any:
        async with started(app), mcp_client(app, token, **headers) as client:
            return await body(client)

    return anyio.run(run)


async def tool_names(client: Client) -> list[str]:
    return sorted(tool.name for tool in (await client.list_tools()).tools)


def call(name: str, arguments: dict[str, Any] | None = None) -> Session:
    async def body(client: Client) -> CallToolResult:
        return await client.call_tool(name, arguments or {})

    return body


def text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def test_an_allowed_call_runs_the_tool(issuer: Issuer, authzen: Starlette) -> None:
    app = build_app(sample_server.kit, issuer, authzen)
    result = session(app, issuer.token("alice"), call("get_revenue_metrics", {"region": "emea"}))
    assert not result.is_error, result
    assert result.structured_content == {"result": [{"date": "2026-11-20", "region": "emea", "revenue_usd": 1_204_300}]}


def test_a_denied_call_is_a_tool_error_with_the_reason_and_decision_id(issuer: Issuer, authzen: Starlette) -> None:
    app = build_app(sample_server.kit, issuer, authzen)
    result = session(app, issuer.token("bob"), call("get_revenue_metrics", {"region": "emea"}))
    assert result.is_error
    message = text(result)
    assert "access denied: this tool is reserved to specific groups (reason: group_required; decision " in message
    assert "revenue_usd" not in message


def test_tools_list_differs_between_callers_and_costs_one_batch_evaluation(issuer: Issuer, authzen: Starlette) -> None:
    recorder = AuthzenRecorder()
    app = build_app(sample_server.kit, issuer, authzen, recorder)
    alice = session(app, issuer.token("alice"), tool_names)
    assert alice == ["echo", "get_revenue_metrics", "server_version", "whoami"]
    assert recorder.paths() == ["/access/v1/evaluations"]
    assert len(recorder.requests[0][1]["evaluations"]) == 5  # the guarded tools; the public one needs no decision
    app = build_app(sample_server.kit, issuer, authzen, recorder)
    assert session(app, issuer.token("bob"), tool_names) == ["echo", "server_version", "whoami"]


def test_the_authz_service_down_denies_guarded_calls_clearly_and_lists_only_public_tools(issuer: Issuer) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    app = build_app(sample_server.kit, issuer, httpx.MockTransport(down))

    async def body(client: Client) -> tuple[list[str], CallToolResult, CallToolResult]:
        return (
            await tool_names(client),
            await client.call_tool("echo", {"message": "hi"}),
            await client.call_tool("server_version", {}),
        )

    names, denied, public_call = session(app, issuer.token("alice"), body)
    assert names == ["server_version"]
    assert denied.is_error and "the authorization service is unavailable" in text(denied)
    assert "reason: authz_unavailable" in text(denied)
    assert not public_call.is_error and text(public_call) == "1.0.0"


def test_the_guard_sends_only_the_arguments_the_policy_reads(issuer: Issuer, authzen: Starlette) -> None:
    kit = Kit("demo")

    @kit.tool()
    @guarded(arguments=["region"], properties=lambda day: {"period": day or "all"})
    def echo(region: str, day: str | None = None, secret_note: str = "") -> str:
        return region

    recorder = AuthzenRecorder()
    app = build_app(kit, issuer, authzen, recorder)
    result = session(app, issuer.token("alice"), call("echo", {"region": "emea", "secret_note": "do not send"}))
    assert not result.is_error, result
    (path, body), *_ = recorder.requests
    assert path == "/access/v1/evaluation"
    assert body["resource"] == {
        "type": "tool",
        "id": "echo",
        "properties": {"server": "demo", "arguments": {"region": "emea", "period": "all"}},
    }
    assert body["subject"]["id"] == "alice" and body["subject"]["properties"]["business_groups"] == ["ads"]


def test_a_repeated_call_is_decided_from_the_cache(issuer: Issuer, authzen: Starlette) -> None:
    recorder = AuthzenRecorder()
    app = build_app(sample_server.kit, issuer, authzen, recorder)

    async def body(client: Client) -> None:
        for _ in range(3):
            assert not (await client.call_tool("echo", {"message": "hi"})).is_error
        assert not (await client.call_tool("echo", {"message": "other"})).is_error

    session(app, issuer.token("alice"), body)
    # One decision per distinct policy input (the SDK client also lists tools once, in a batch of its own).
    assert recorder.paths().count("/access/v1/evaluation") == 2


def test_the_caller_parameter_is_injected_and_kept_out_of_the_input_schema(issuer: Issuer, authzen: Starlette) -> None:
    kit = Kit("demo")

    @kit.tool(name="whoami")
    @public(reason="Returns the caller's own identity.")
    async def me(prefix: str, caller: Caller, ctx: Context) -> str:
        assert ctx.request_id
        return f"{prefix}{caller.user}/{caller.client_id}/{','.join(caller.business_groups)}"

    app = build_app(kit, issuer, authzen)

    async def body(client: Client) -> tuple[dict[str, Any], CallToolResult]:
        (tool,) = (await client.list_tools()).tools
        return tool.input_schema, await client.call_tool("whoami", {"prefix": "> "})

    schema, result = session(app, issuer.token("bob"), body)
    assert set(schema["properties"]) == {"prefix"}
    assert text(result) == "> bob/claude-desktop/search"


def test_metrics_count_calls_denials_errors_and_latency_per_tool(issuer: Issuer, authzen: Starlette) -> None:
    kit = Kit("demo")

    @kit.tool()
    @public(reason="Fails on purpose for this test.")
    def echo(message: str) -> str:
        raise ToolError("backend unavailable")

    @kit.tool()
    @guarded()
    def get_revenue_metrics() -> str:
        return "secret"

    app = build_app(kit, issuer, authzen)

    async def body(client: Client) -> None:
        await client.call_tool("echo", {"message": "x"})
        await client.call_tool("get_revenue_metrics", {})

    session(app, issuer.token("bob"), body)
    exposition = app.state.kit_metrics.exposition().decode()
    assert 'portcullis_kit_tool_calls_total{server="demo",tool="echo"} 1.0' in exposition
    assert 'portcullis_kit_tool_errors_total{server="demo",tool="echo"} 1.0' in exposition
    assert (
        'portcullis_kit_tool_denials_total{reason="group_required",server="demo",tool="get_revenue_metrics"} 1.0'
        in exposition
    )
    assert 'portcullis_kit_tool_seconds_count{server="demo",tool="get_revenue_metrics"} 1.0' in exposition
    assert 'portcullis_kit_decisions_total{cache="miss",result="deny",server="demo"} 1.0' in exposition


def test_tool_call_logs_are_json_with_the_decision_ids_and_never_the_token(
    issuer: Issuer, authzen: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_app(sample_server.kit, issuer, authzen)
    token = issuer.token("bob")
    caplog.set_level(logging.INFO, logger="portcullis.kit")
    headers = {"x-portcullis-decision-id": "edge-42", "x-request-id": "req-42"}
    session(app, token, call("get_revenue_metrics", {"region": "emea"}), **headers)
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    (denied,) = [line for line in lines if line["message"] == "tool call denied"]
    assert denied["tool"] == "get_revenue_metrics" and denied["user"] == "bob" and denied["outcome"] == "denied"
    assert denied["edge_decision_id"] == "edge-42" and denied["request_id"] == "req-42"
    assert denied["reason"] == "group_required" and denied["decision_id"]
    assert all(token not in json.dumps(line) for line in lines)
