"""The Spark server's tools through the real MCP SDK client, real tokens and the real policies, against the
real History Server serving the two local applications (tests/servers/spark/conftest.py)."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest

from portcullis.testing import free_port
from server_kit.testing import KitHarness
from servers.spark.errors import HistoryServerError
from servers.spark.history import HistorySettings
from servers.spark.server import kit
from tests.servers.spark.conftest import SERVER_JSON

GROUPS = ["eng", "data-eng"]
BUSINESS_GROUPS = ["data-platform"]


def engineer(harness: KitHarness, client_id: str | None = None) -> str:
    """A token of a data engineer (through the server's first admitted client unless told)."""
    return harness.token("alice", groups=GROUPS, business_groups=BUSINESS_GROUPS, client_id=client_id)


TOOLS = ["diagnose_application", "get_application", "get_executors", "get_failures", "list_applications"]


def text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def call(harness: KitHarness, tool: str, arguments: dict[str, Any] | None = None) -> Any:
    result = harness.call(engineer(harness), tool, arguments)
    assert not result.is_error, text(result)
    content = result.structured_content or {}
    return content.get("result", content)


def refused(harness: KitHarness, tool: str, arguments: dict[str, Any]) -> str:
    result = harness.call(engineer(harness), tool, arguments)
    assert result.is_error
    assert "Traceback" not in text(result)
    return text(result)


@pytest.fixture(scope="module")
def app_ids(harness: KitHarness) -> dict[str, str]:
    """Application name -> id of the two local applications."""
    return {row["name"]: row["id"] for row in call(harness, "list_applications")}


def test_the_list_shows_both_local_applications_with_their_judged_status(harness: KitHarness) -> None:
    rows = {row["name"]: row for row in call(harness, "list_applications")}
    assert set(rows) == {"daily-sales-rollup", "nightly-customer-import"}
    assert rows["daily-sales-rollup"]["status"] == "succeeded"
    assert rows["nightly-customer-import"]["status"] == "failed"
    for row in rows.values():
        assert row["id"].startswith("local-") and row["user"] and row["start"] and row["end"]
        assert row["duration_ms"] > 0


def test_the_failed_application_is_judged_failed_though_its_driver_exited_0(
    harness: KitHarness, app_ids: dict[str, str]
) -> None:
    summary = call(harness, "get_application", {"app_id": app_ids["nightly-customer-import"]})
    assert summary["status"] == "failed" and summary["exit_code"] == 0
    assert summary["jobs"] == {"total": 2, "succeeded": 1, "failed": 1, "running": 0}
    assert summary["stages"]["failed"] == 1 and summary["tasks"]["failed"] >= 1
    assert "exit code 0" in summary["note"]


def test_the_failures_give_the_stage_reason_and_the_task_error(harness: KitHarness, app_ids: dict[str, str]) -> None:
    failures = call(harness, "get_failures", {"app_id": app_ids["nightly-customer-import"]})
    (job,) = failures["failed_jobs"]
    (stage,) = failures["failed_stages"]
    assert stage["stage"] in job["stages"] and stage["status"] == "FAILED"
    assert stage["failure_reason"] == "ValueError: cannot parse amount 'n/a' of customer record"
    (task,) = stage["task_failures"]
    assert task["error"] == stage["failure_reason"] and not task["out_of_memory"]
    assert "\tat org.apache" not in task["details"]  # stack frames left out


def test_diagnose_says_in_words_why_the_import_failed(harness: KitHarness, app_ids: dict[str, str]) -> None:
    diagnosis = call(harness, "diagnose_application", {"app_id": app_ids["nightly-customer-import"]})
    assert diagnosis["verdict"] == "failed"
    assert "failed even though its driver finished normally (exit code 0)" in diagnosis["headline"]
    assert "ValueError: cannot parse amount 'n/a' of customer record" in diagnosis["headline"]
    kinds = {finding["kind"] for finding in diagnosis["findings"]}
    assert {"failed_job", "failed_stage", "task_failure"} <= kinds


def test_diagnose_finds_the_skew_and_the_spill_of_the_rollup(harness: KitHarness, app_ids: dict[str, str]) -> None:
    diagnosis = call(harness, "diagnose_application", {"app_id": app_ids["daily-sales-rollup"]})
    assert diagnosis["verdict"] == "succeeded with warnings"
    findings = {finding["kind"]: finding for finding in diagnosis["findings"]}
    assert "its largest task read" in findings["data_skew"]["message"]
    assert "spilled" in findings["spill"]["message"]
    assert findings["data_skew"]["stage"] == findings["spill"]["stage"]
    assert "Data skew in stage" in diagnosis["explanation"]


def test_the_executors_show_cores_memory_tasks_and_the_spill(harness: KitHarness, app_ids: dict[str, str]) -> None:
    executors = call(harness, "get_executors", {"app_id": app_ids["daily-sales-rollup"]})
    (driver,) = executors["executors"]
    assert driver["id"] == "driver" and driver["cores"] == 2
    assert driver["tasks"]["completed"] == driver["tasks"]["total"] > 0 and driver["tasks"]["failed"] == 0
    assert driver["storage_memory"].endswith("MiB") and "gc_time" in driver
    assert executors["spill"]["disk_bytes"] > 0 and executors["spill"]["stages"]


def test_an_unknown_application_id_is_a_clear_tool_error(harness: KitHarness) -> None:
    message = refused(harness, "diagnose_application", {"app_id": "local-0000000000000"})
    assert message.endswith("no Spark application 'local-0000000000000' in the History Server")


def test_a_malformed_application_id_is_refused_before_the_history_server_is_asked(harness: KitHarness) -> None:
    message = refused(harness, "get_failures", {"app_id": "../../../etc/passwd"})
    assert "invalid Spark application id '../../../etc/passwd'" in message


def test_a_limit_out_of_range_is_refused(harness: KitHarness) -> None:
    assert "limit must be between 1 and 100, not 0" in refused(harness, "list_applications", {"limit": 0})


def test_an_unreachable_history_server_is_a_clear_tool_error_naming_its_url(harness: KitHarness) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    message = refused(harness.with_resources(HistorySettings(history_url=url)), "list_applications", {})
    assert f"the Spark History Server at {url} is unreachable (ConnectError)" in message


def test_a_misconfigured_history_url_refuses_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_SPARK_HISTORY_URL", "history-server:18080")  # read once, when the server starts
    with pytest.raises(HistoryServerError, match="the Spark server is misconfigured: PORTCULLIS_SPARK_HISTORY_URL"):
        with KitHarness(kit, SERVER_JSON):
            pass


def test_an_admitted_user_sees_every_tool(harness: KitHarness) -> None:
    assert harness.tool_names(harness.token("bob", groups=["eng"], business_groups=["search"])) == TOOLS


def test_a_client_the_server_does_not_admit_is_denied_and_sees_no_tool(harness: KitHarness) -> None:
    token = engineer(harness, client_id="registry-ui")
    result = harness.call(token, "list_applications", {})
    assert result.is_error
    assert "access denied" in text(result) and "reason: client_not_allowed" in text(result)
    assert harness.tool_names(token) == []
