"""The Airflow server's tools through the real MCP SDK client (KitHarness: real tokens, the real policies) against
the real local Airflow 3: listing, a failing run diagnosed from its log, owner-only writes, and clear errors.
"""

from __future__ import annotations

import json
import time
from typing import Any

import mcp_types as types
from mcp.client.context import ClientRequestContext
from pydantic import SecretStr

from portcullis.testing import free_port
from server_kit.testing import KitHarness
from servers.airflow.client import TokenCache
from servers.airflow.settings import AirflowSettings
from tests.conftest import Backend
from tests.servers.airflow.conftest import settings_of

# (groups, business groups) as the built-in directory has them: alice owns the ads-eng DAGs, bob the platform one.
PEOPLE = {"alice": (["eng", "ads-eng"], ["ads"]), "bob": (["eng", "platform"], ["search"])}
FAILING = "ads_campaign_sync"
PLATFORM = "platform_log_cleanup"
RUN_TIMEOUT = 120.0


class Answer:
    """An elicitation callback that answers as told and records the questions."""

    def __init__(self, action: str = "accept", confirm: bool = True):
        self.action = action
        self.confirm = confirm
        self.messages: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.messages.append(params.message)
        content = {"confirm": self.confirm} if self.action == "accept" else None
        return types.ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]


def text(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


def data(result: types.CallToolResult) -> Any:
    assert not result.is_error, text(result)
    if isinstance(result.structured_content, dict) and set(result.structured_content) == {"result"}:
        return result.structured_content["result"]
    return result.structured_content if result.structured_content is not None else json.loads(text(result))


def token_of(harness: KitHarness, name: str) -> str:
    groups, business_groups = PEOPLE[name]
    return harness.token(name, groups=groups, business_groups=business_groups)


def call(harness: KitHarness, name: str, tool: str, **arguments: Any) -> types.CallToolResult:
    """Call `tool` as `name`, confirming when asked."""
    return harness.call(token_of(harness, name), tool, arguments, elicitation=Answer())


def wait_for_run_end(harness: KitHarness, dag_id: str, run_id: str) -> dict[str, Any]:
    """Poll the run through the tool until it ends, with a deadline."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        runs = data(call(harness, "alice", "list_dag_runs", dag_id=dag_id, limit=20))["runs"]
        run = next(run for run in runs if run["run_id"] == run_id)
        if run["state"] in ("success", "failed"):
            return dict(run)
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} of {dag_id} did not end within {RUN_TIMEOUT}s")


def test_list_dags_shows_owners_tags_paused_flag_and_last_run(harness: KitHarness) -> None:
    listing = data(call(harness, "bob", "list_dags"))
    dags = {dag["dag_id"]: dag for dag in listing["dags"]}
    assert {"ads_daily_revenue", FAILING, PLATFORM} <= set(dags)
    assert dags[FAILING]["owners"] == ["ads-eng"]
    assert dags[PLATFORM]["owners"] == ["platform"]
    assert dags["ads_daily_revenue"]["tags"] == ["ads", "revenue"]
    assert dags[FAILING]["paused"] is False
    assert "last_run" in dags[FAILING]
    only_ads = data(call(harness, "bob", "list_dags", tag="ads"))
    assert {dag["dag_id"] for dag in only_ads["dags"]} == {"ads_daily_revenue", FAILING}


def test_an_owner_triggers_the_failing_dag_and_the_task_log_shows_why(harness: KitHarness) -> None:
    alice = token_of(harness, "alice")
    answer = Answer()
    result = harness.call(alice, "trigger_dag_run", {"dag_id": FAILING, "note": "diagnosis test"}, elicitation=answer)
    run = data(result)
    assert len(answer.messages) == 1 and FAILING in answer.messages[0]
    assert run["dag_id"] == FAILING and run["state"] in ("queued", "running")
    assert "alice" in run["note"] and "diagnosis test" in run["note"]

    ended = wait_for_run_end(harness, FAILING, run["run_id"])
    assert ended["state"] == "failed"
    listing = data(call(harness, "alice", "list_dags", dag_id_pattern="ads_campaign%"))
    assert listing["dags"][0]["last_run"]["state"] == "failed"

    tasks = data(call(harness, "alice", "list_task_instances", dag_id=FAILING, run_id=run["run_id"]))
    states = {task["task_id"]: task["state"] for task in tasks["tasks"]}
    assert tasks["run_state"] == "failed"
    assert states == {"fetch_feed": "success", "load_campaigns": "failed"}

    log = call(harness, "alice", "get_task_logs", dag_id=FAILING, run_id=run["run_id"], task_id="load_campaigns")
    report = text(log)
    assert not log.is_error, report
    assert "try 1 of 1: failed" in report
    assert "Failure: FeedError: campaign feed returned 0 rows: the partner export for today is missing" in report
    assert "Traceback (most recent call last" in report
    assert "ads_campaign_sync.py" in report and "in load_campaigns" in report
    assert "Task failed with exception" in report  # the error line

    ok = text(call(harness, "alice", "get_task_logs", dag_id=FAILING, run_id=run["run_id"], task_id="fetch_feed"))
    assert "try 1 of 1: success" in ok and "No failure" in ok
    assert "fetched campaign feed: 0 rows" in ok  # the task's own output, in the tail

    no_try = call(harness, "alice", "get_task_logs", dag_id=FAILING, run_id=run["run_id"], task_id="fetch_feed",
                  try_number=3)  # fmt: skip
    assert no_try.is_error and "has 1 try" in text(no_try)


def test_a_non_owner_is_denied_trigger_and_no_run_is_created(harness: KitHarness) -> None:
    before = data(call(harness, "bob", "list_dag_runs", dag_id=FAILING, limit=100))["total"]
    result = call(harness, "bob", "trigger_dag_run", dag_id=FAILING)
    assert result.is_error
    assert "not_dag_owner" in text(result)
    assert data(call(harness, "bob", "list_dag_runs", dag_id=FAILING, limit=100))["total"] == before


def test_an_owner_pauses_and_unpauses_a_dag_and_a_non_owner_cannot(harness: KitHarness) -> None:
    paused = data(call(harness, "bob", "pause_dag", dag_id=PLATFORM))
    assert paused == {"dag_id": PLATFORM, "paused": True, "was_paused": False}
    listed = data(call(harness, "bob", "list_dags", dag_id_pattern=PLATFORM))["dags"][0]
    assert listed["paused"] is True

    queued = data(call(harness, "bob", "trigger_dag_run", dag_id=PLATFORM))
    assert queued["state"] == "queued" and "paused" in queued["warning"]

    denied = call(harness, "alice", "unpause_dag", dag_id=PLATFORM)
    assert denied.is_error and "not_dag_owner" in text(denied)

    unpaused = data(call(harness, "bob", "unpause_dag", dag_id=PLATFORM))
    assert unpaused == {"dag_id": PLATFORM, "paused": False, "was_paused": True}


def test_a_write_without_the_persons_confirmation_does_not_run(harness: KitHarness) -> None:
    bob = token_of(harness, "bob")
    declined = harness.call(bob, "pause_dag", {"dag_id": PLATFORM}, elicitation=Answer("decline"))
    assert declined.is_error and "declined" in text(declined)
    cannot_ask = harness.call(bob, "pause_dag", {"dag_id": PLATFORM})
    assert cannot_ask.is_error and "confirmation_required" in text(cannot_ask)
    assert data(call(harness, "bob", "list_dags", dag_id_pattern=PLATFORM))["dags"][0]["paused"] is False


def test_unknown_dag_run_and_task_are_clear_errors(harness: KitHarness) -> None:
    unknown_dag = call(harness, "alice", "list_dag_runs", dag_id="no_such_dag")
    assert unknown_dag.is_error and "unknown DAG 'no_such_dag'" in text(unknown_dag)
    trigger = call(harness, "alice", "trigger_dag_run", dag_id="no_such_dag")
    assert trigger.is_error and "unknown DAG 'no_such_dag'" in text(trigger)
    unknown_run = call(harness, "alice", "list_task_instances", dag_id=FAILING, run_id="manual__nope")
    assert unknown_run.is_error and "unknown run 'manual__nope'" in text(unknown_run)
    runs = data(call(harness, "alice", "list_dag_runs", dag_id=FAILING))["runs"]
    if runs:
        unknown_task = call(harness, "alice", "get_task_logs", dag_id=FAILING, run_id=runs[0]["run_id"], task_id="nope")
        assert unknown_task.is_error and "unknown task 'nope'" in text(unknown_task)


def test_malformed_ids_are_refused_before_airflow_is_asked(harness: KitHarness) -> None:
    result = call(harness, "alice", "list_dag_runs", dag_id="../../etc/passwd")
    assert result.is_error and "dag_id '../../etc/passwd' is not valid" in text(result)
    result = call(harness, "alice", "list_task_instances", dag_id=FAILING, run_id="")
    assert result.is_error and "run_id" in text(result)


def test_airflow_unreachable_is_a_clear_error_naming_the_url(harness: KitHarness) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    unreachable = harness.with_resources(
        AirflowSettings(api_url=url, password=SecretStr("anything"), timeout_seconds=2)
    )
    result = call(unreachable, "alice", "list_dags")
    assert result.is_error
    assert f"Airflow at {url} is unreachable" in text(result)
    assert "Traceback" not in text(result)


def test_a_wrong_service_account_password_is_a_clear_error(harness: KitHarness, airflow: Backend) -> None:
    settings = settings_of(airflow).model_copy(update={"password": SecretStr("wrong-password")})
    result = call(harness.with_resources(settings), "alice", "list_dags")
    assert result.is_error and "refused the service account 'portcullis'" in text(result)
    assert "wrong-password" not in text(result)


def test_an_expired_or_rejected_token_is_replaced_once(harness: KitHarness) -> None:
    tokens = TokenCache()
    tokens.store("not-a-valid-jwt")  # Airflow answers 401: the client logs in again and retries
    assert data(call(harness.with_resources(tokens), "alice", "list_dag_runs", dag_id=PLATFORM))["dag_id"] == PLATFORM
    assert tokens.current(0) not in ("", "not-a-valid-jwt")


def test_every_tool_is_listed_to_a_person_who_may_reach_the_server(harness: KitHarness) -> None:
    assert harness.tool_names(harness.token("carol", groups=["finance-analysts"])) == [
        "get_task_logs",
        "list_dag_runs",
        "list_dags",
        "list_task_instances",
        "pause_dag",
        "trigger_dag_run",
        "unpause_dag",
    ]


def test_runs_can_be_filtered_by_state_and_a_bad_state_is_refused(harness: KitHarness) -> None:
    failed = data(call(harness, "alice", "list_dag_runs", dag_id=FAILING, state="failed"))
    assert all(run["state"] == "failed" for run in failed["runs"])
    bad = call(harness, "alice", "list_dag_runs", dag_id=FAILING, state="exploded")
    assert bad.is_error and "state" in text(bad)
