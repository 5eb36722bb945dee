"""The domain servers end to end: registered in the real registry (their server.json), routed by the real Envoy,
decided at the edge and in each server by the same policies, each against its real backend, called with the
real `mcp` SDK client through the gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import mcp_types as types
import pytest
from mcp.client.context import ClientRequestContext

from portcullis.testing import LocalPlatform, free_port, wait_http
from servers.sql import local as sql_local
from tests.conftest import Backend
from tests.e2e.sdk import call, mcp_error, session, text, tool_names

pytestmark = pytest.mark.e2e

ADS = {"groups": ["eng", "ads-eng"], "business_groups": ["ads"]}
SEARCH = {"groups": ["eng", "platform"], "business_groups": ["search"]}


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, history_server: Backend, redmine: Backend, airflow: Backend
) -> Iterator[LocalPlatform]:
    """The platform with the registry, and each domain server against the session's real backend."""
    workdir: Path = tmp_path_factory.mktemp("domain-platform")
    sql_state = workdir / "backends" / "sql"
    sql_local.setup(sql_state)
    backends = {
        "sql": sql_local.server_environment(sql_state),
        "spark": history_server.environment,
        "tickets": redmine.environment,
        "airflow": airflow.environment,
    }
    ports = {name: free_port() for name in backends}
    with LocalPlatform.start(workdir, workers=1, registry=True, upstreams=ports) as running:
        for name, environment in backends.items():
            running.start_server(name, ports[name], environment)
        for name in ports:  # routed once the registry's snapshot reaches the gateway
            _wait_routed(running, name)
        yield running


class Confirm:
    """The person at the client: confirms each mutating call and remembers what was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})


def _wait_routed(platform: LocalPlatform, server: str) -> None:
    url = f"{platform.gateway_url}/servers/{server}/.well-known/oauth-protected-resource"
    wait_http(url, timeout=30)


def token(platform: LocalPlatform, user: str, server: str, who: dict[str, list[str]]) -> str:
    return platform.token(user, server=server, groups=who["groups"], business_groups=who["business_groups"])


def test_the_domain_servers_are_registered_with_their_governance(platform: LocalPlatform) -> None:
    listing = httpx.get(f"{platform.registry_url}/v0.1/servers", timeout=10).json()
    entries = {item["server"]["name"]: item["server"] for item in listing["servers"]}
    expected = {
        "sql": {"run_query", "get_revenue_metrics"},
        "spark": {"diagnose_application"},
        "tickets": {"create"},
        "airflow": {"trigger_dag_run"},
    }
    for name, tools in expected.items():
        governance = entries[f"com.portcullis.data/{name}"]["_meta"]["dev.portcullis/governance"]
        assert governance["owner_team"] == "data-platform" and governance["sensitivity"] == "internal"
        assert {tool["name"] for tool in governance["tools"]} >= tools


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


def test_spark_diagnosis_through_the_gateway_judges_failure_from_jobs(platform: LocalPlatform) -> None:
    url = platform.mcp_url("spark")
    alice = token(platform, "alice", "spark", ADS)
    listed = session(url, alice, call("list_applications"))
    assert not listed.is_error, text(listed)
    failed = [app for app in listed.structured_content["result"] if app["name"] == "nightly-customer-import"]
    assert failed and failed[0]["status"] == "failed"
    diagnosis = session(url, alice, call("diagnose_application", {"app_id": failed[0]["id"]}))
    assert not diagnosis.is_error, text(diagnosis)
    assert "cannot parse amount" in text(diagnosis)
    unknown = session(url, alice, call("get_application", {"app_id": "app-00000000000000-0000"}))
    assert unknown.is_error and "no Spark application" in text(unknown)


def test_a_client_application_not_allowed_is_refused_at_the_edge(platform: LocalPlatform) -> None:
    for server in ("spark", "tickets", "sql", "airflow"):
        outsider = platform.token("alice", server=server, client="cursor", **ADS)
        refused = httpx.post(
            platform.mcp_url(server),
            headers={"authorization": f"Bearer {outsider}", "accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            timeout=10,
        )
        assert refused.status_code == 403, (server, refused.status_code, refused.text)


def test_a_ticket_is_filed_with_confirmation_and_found_through_the_gateway(platform: LocalPlatform) -> None:
    url = platform.mcp_url("tickets")
    alice = token(platform, "alice", "tickets", ADS)
    confirm = Confirm()
    created = session(
        url, alice, call("create", {"project": "ads", "summary": "Gateway proof zq71e2e"}), elicitation=confirm
    )
    assert not created.is_error, text(created)
    assert len(confirm.asked) == 1
    key = created.structured_content["key"]
    found = session(url, alice, call("search", {"query": "zq71e2e"}))
    assert not found.is_error and key in text(found)
    missing = session(url, alice, call("get", {"key": "ads-987654"}))
    assert missing.is_error and "no ticket ads-987654" in text(missing)


def test_only_a_dags_owners_trigger_it_through_the_gateway(platform: LocalPlatform) -> None:
    url = platform.mcp_url("airflow")
    alice = token(platform, "alice", "airflow", ADS)
    dags = session(url, alice, call("list_dags"))
    assert not dags.is_error, text(dags)
    assert "ads_campaign_sync" in text(dags) and "platform_log_cleanup" in text(dags)

    confirm = Confirm()
    triggered = session(url, alice, call("trigger_dag_run", {"dag_id": "ads_daily_revenue"}), elicitation=confirm)
    assert not triggered.is_error, text(triggered)
    assert len(confirm.asked) == 1
    runs = session(url, alice, call("list_dag_runs", {"dag_id": "ads_daily_revenue"}))
    assert triggered.structured_content["run_id"] in text(runs)

    bob = token(platform, "bob", "airflow", SEARCH)
    refused = session(url, bob, call("trigger_dag_run", {"dag_id": "ads_daily_revenue"}), elicitation=Confirm())
    assert refused.is_error and "not_dag_owner" in text(refused)
    unknown = session(url, alice, call("list_dag_runs", {"dag_id": "no_such_dag"}))
    assert unknown.is_error and "no_such_dag" in text(unknown)
