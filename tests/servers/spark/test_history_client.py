"""The History Server client's own logic, on a fake transport: attempt paths, error mapping, settings.

The real History Server is the proof (test_tools.py); these cover answers the local one never gives (an
application with attempt ids, a 500, a URL with credentials)."""

from __future__ import annotations

import anyio
import httpx
import pytest

from servers.spark.errors import ApplicationNotFound, HistoryServerError, InvalidRequest
from servers.spark.history import HistoryClient, HistorySettings, check_application_id

YARN_APP = {
    "id": "application_1700000000000_0042",
    "name": "etl",
    "attempts": [{"attemptId": "2", "completed": True}, {"attemptId": "1", "completed": True}],
}


def client(handler: httpx.MockTransport, url: str = "http://history:18080") -> HistoryClient:
    return HistoryClient(HistorySettings(history_url=url), transport=handler)


def test_an_application_with_attempts_is_read_through_its_latest_attempt() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path.endswith("/jobs"):
            return httpx.Response(200, json=[{"jobId": 0, "status": "SUCCEEDED"}])
        return httpx.Response(200, json=YARN_APP)

    async def run() -> None:
        async with client(httpx.MockTransport(answer)) as history:
            app = await history.application(YARN_APP["id"])  # type: ignore[arg-type]
            assert await history.jobs(app) == [{"jobId": 0, "status": "SUCCEEDED"}]

    anyio.run(run)
    assert asked == [
        "/api/v1/applications/application_1700000000000_0042",
        "/api/v1/applications/application_1700000000000_0042/2/jobs",
    ]


def test_a_404_naming_the_application_is_not_found_and_other_errors_name_the_server() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/missing"):
            return httpx.Response(404, text="unknown app: missing")
        return httpx.Response(500, text="java.lang.NullPointerException")

    async def run(app_id: str) -> None:
        async with client(httpx.MockTransport(answer), "http://spark:s3cret@history:18080/") as history:
            await history.application(app_id)

    with pytest.raises(ApplicationNotFound, match="^no Spark application 'missing' in the History Server$"):
        anyio.run(run, "missing")
    with pytest.raises(HistoryServerError) as error:
        anyio.run(run, "local-1")
    assert str(error.value) == (
        "the Spark History Server at http://history:18080 answered HTTP 500 for /applications/local-1"
    )
    assert "s3cret" not in str(error.value)


def test_a_stage_without_task_metrics_has_no_summary() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/taskSummary"):
            return httpx.Response(404, text="No tasks reported metrics for 3 / 0 yet.")
        return httpx.Response(200, json={"id": "local-1", "attempts": [{}]})

    async def run() -> object:
        async with client(httpx.MockTransport(answer)) as history:
            app = await history.application("local-1")
            return await history.task_summary(app, 3, 0, (0.5, 1.0))

    assert anyio.run(run) is None


def test_a_timeout_says_how_long_it_waited() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async def run() -> None:
        async with client(httpx.MockTransport(answer)) as history:
            await history.applications(10)

    with pytest.raises(HistoryServerError, match=r"at http://history:18080 did not answer within 30s"):
        anyio.run(run)


@pytest.mark.parametrize("app_id", ["", "../x", "a/b", "local-1?x=1", "a" * 201, " local-1"])
def test_a_malformed_application_id_is_refused(app_id: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid Spark application id"):
        check_application_id(app_id)


@pytest.mark.parametrize("app_id", ["local-1795544794167", "application_1700000000000_0042", "app-2024.x"])
def test_spark_application_ids_are_accepted(app_id: str) -> None:
    assert check_application_id(app_id) == app_id
