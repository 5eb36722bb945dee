"""The domain servers end to end: registered in the real registry (their server.json), routed by the real Envoy,
decided at the edge and in each server by the same policies, each against its real backend, called with the
real `mcp` SDK client through the gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portcullis.testing import LocalPlatform, free_port, wait_http
from servers.sql import local as sql_local
from tests.e2e.sdk import call, mcp_error, session, text, tool_names

pytestmark = pytest.mark.e2e

ADS = {"groups": ["eng", "ads-eng"], "business_groups": ["ads"]}
SEARCH = {"groups": ["eng", "platform"], "business_groups": ["search"]}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    workdir: Path = tmp_path_factory.mktemp("domain-platform")
    sql_state = workdir / "backends" / "sql"
    sql_local.setup(sql_state)
    ports = {"sql": free_port()}
    with LocalPlatform.start(workdir, workers=1, registry=True, upstreams=ports) as running:
        running.start_server("sql", ports["sql"], sql_local.server_environment(sql_state))
        for name in ports:  # routed once the registry's snapshot reaches the gateway
            _wait_routed(running, name)
        yield running


def _wait_routed(platform: LocalPlatform, server: str) -> None:
    url = f"{platform.gateway_url}/servers/{server}/.well-known/oauth-protected-resource"
    wait_http(url, timeout=30)


def token(platform: LocalPlatform, user: str, server: str, who: dict[str, list[str]]) -> str:
    return platform.token(user, server=server, groups=who["groups"], business_groups=who["business_groups"])


def test_the_domain_servers_are_registered_with_their_governance(platform: LocalPlatform) -> None:
    listing = httpx.get(f"{platform.registry_url}/v0.1/servers", timeout=10).json()
    entries = {item["server"]["name"]: item["server"] for item in listing["servers"]}
    sql = entries["com.portcullis.data/sql"]
    governance = sql["_meta"]["dev.portcullis/governance"]
    assert governance["owner_team"] == "data-platform" and governance["sensitivity"] == "internal"
    assert {tool["name"] for tool in governance["tools"]} >= {"run_query", "get_revenue_metrics"}


def test_sql_query_through_the_gateway_reads_the_callers_business_group_only(platform: LocalPlatform) -> None:
    url = platform.mcp_url("sql")
    sql = "select region, sum(revenue_usd) as revenue from ads.revenue_daily group by 1 order by 1"
    allowed = session(url, token(platform, "alice", "sql", ADS), call("run_query", {"sql": sql}))
    assert not allowed.is_error, text(allowed)
    assert text(allowed).startswith("| region | revenue |") and "| emea |" in text(allowed)
    denied = session(url, token(platform, "bob", "sql", SEARCH), call("run_query", {"sql": sql}))
    assert denied.is_error and "lake.ads.revenue_daily" in text(denied) and "business_group_mismatch" in text(denied)


def test_sql_revenue_tool_is_refused_at_the_edge_for_a_non_member(platform: LocalPlatform) -> None:
    url = platform.mcp_url("sql")
    bob = token(platform, "bob", "sql", SEARCH)
    refused = mcp_error(url, bob, call("get_revenue_metrics"))
    assert refused.data["reason"] == "group_required"
    assert "get_revenue_metrics" not in session(url, bob, tool_names)
    alice = session(url, token(platform, "alice", "sql", ADS), call("get_revenue_metrics", {"region": "apac"}))
    assert not alice.is_error and {row["region"] for row in alice.structured_content["result"]} == {"apac"}


def test_bad_sql_through_the_gateway_is_a_clear_tool_error(platform: LocalPlatform) -> None:
    url = platform.mcp_url("sql")
    result = session(url, token(platform, "bob", "sql", SEARCH), call("run_query", {"sql": "delete from regions"}))
    assert result.is_error
    assert "only read-only statements are allowed" in text(result) and "Traceback" not in text(result)
