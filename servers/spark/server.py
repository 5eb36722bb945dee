"""The Spark MCP server: read-only answers about Spark applications from the History Server's REST API.

Every tool is guarded (the policy decides per call) and only reads. An application's status is judged from
its jobs and stages, never from its exit code: a driver that swallows a failed job exits 0.

Settings: `KIT_SPARK_*` (server_kit/README.md) for the kit; `PORTCULLIS_SPARK_HISTORY_URL` and
`PORTCULLIS_SPARK_TIMEOUT_SECONDS` for the History Server (servers/spark/history.py), read once when the server
starts. One client of the History Server serves every call; it is closed when the server stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any, TypeVar

from server_kit import Kit, KitSettings, guarded
from servers.spark.diagnosis import QUANTILES, Evidence, diagnose, stages_to_inspect
from servers.spark.errors import InvalidRequest
from servers.spark.history import Application, HistoryClient, HistorySettings, load_history_settings
from servers.spark.views import application_row, application_summary, executor_view, failures_view, number

__all__ = ["DEFAULT_PORT", "history_client", "history_settings", "kit", "load_settings"]

DEFAULT_PORT = 8302
MAX_APPLICATIONS = 100
FAILED_TASKS_PER_STAGE = 20
_CONCURRENCY = 8  # requests in flight to the History Server per tool call

_T = TypeVar("_T")

kit = Kit(
    "spark",
    title="Spark applications",
    instructions=(
        "Read-only answers about Spark applications from the Spark History Server: list them, summarize one, "
        "show its failures and executors, and diagnose a failed or slow run in plain words. A failed "
        "application can report exit code 0; its status here comes from its jobs."
    ),
)


@kit.resource
def history_settings() -> HistorySettings:
    """Where the History Server is, read once from `PORTCULLIS_SPARK_*` when the server starts.

    Raises:
        HistoryServerError: a setting is malformed (named, with why).
    """
    return load_history_settings()


@kit.resource
async def history_client(settings: HistorySettings) -> AsyncIterator[HistoryClient]:
    """The History Server's client, shared by every call and closed when the server stops."""
    async with HistoryClient(settings) as client:
        yield client


async def _gather(awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
    """Await all, at most `_CONCURRENCY` at a time, in order."""
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(awaitable: Awaitable[_T]) -> _T:
        async with gate:
            return await awaitable

    return list(await asyncio.gather(*(one(item) for item in awaitables)))


@kit.tool()
@guarded()
async def list_applications(client: HistoryClient, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent Spark applications, newest first: id, name, status (judged from their jobs: failed,
    succeeded or incomplete), user, start, end and duration."""
    if not 1 <= limit <= MAX_APPLICATIONS:
        raise InvalidRequest(f"limit must be between 1 and {MAX_APPLICATIONS}, not {limit}")
    applications = await client.applications(limit)
    jobs = await _gather(client.jobs(app) for app in applications)
    return [application_row(app.document, app_jobs) for app, app_jobs in zip(applications, jobs, strict=True)]


@kit.tool()
@guarded()
async def get_application(client: HistoryClient, app_id: str) -> dict[str, Any]:
    """One application at a glance: status (judged from its jobs), duration, jobs and stages succeeded and
    failed, tasks, executors and data read, shuffled and spilled."""
    app = await client.application(app_id)
    jobs, stages, executors = await asyncio.gather(client.jobs(app), client.stages(app), client.executors(app))
    return application_summary(app.document, jobs, stages, executors)


async def _failed_tasks(
    client: HistoryClient, app: Application, keys: list[tuple[int, int]]
) -> dict[tuple[int, int], list[dict[str, Any]]]:
    tasks = await _gather(client.failed_tasks(app, stage, attempt, FAILED_TASKS_PER_STAGE) for stage, attempt in keys)
    return dict(zip(keys, tasks, strict=True))


@kit.tool()
@guarded()
async def get_failures(client: HistoryClient, app_id: str) -> dict[str, Any]:
    """The failed jobs and stages of an application with their failure reasons, and the errors of its failed
    tasks (up to 20 per stage; stack frames left out), each flagged when it says memory ran out."""
    app = await client.application(app_id)
    jobs, stages = await asyncio.gather(client.jobs(app), client.stages(app))
    with_failures, _ = stages_to_inspect(stages)
    failed_tasks = await _failed_tasks(client, app, with_failures)
    return {"application": app.id, "name": app.document.get("name"), **failures_view(jobs, stages, failed_tasks)}


@kit.tool()
@guarded()
async def get_executors(client: HistoryClient, app_id: str) -> dict[str, Any]:
    """The executors of an application (the driver and removed ones included): memory, cores, tasks, failed
    tasks and GC time, with the spill its stages reported."""
    app = await client.application(app_id)
    executors, stages = await asyncio.gather(client.executors(app), client.stages(app))
    spilled = [stage for stage in stages if number(stage, "diskBytesSpilled") or number(stage, "memoryBytesSpilled")]
    return {
        "application": app.id,
        "executors": [executor_view(executor) for executor in executors],
        "spill": {
            "memory_bytes": int(sum(number(stage, "memoryBytesSpilled") for stage in spilled)),
            "disk_bytes": int(sum(number(stage, "diskBytesSpilled") for stage in spilled)),
            "stages": sorted({int(number(stage, "stageId")) for stage in spilled}),
        },
    }


@kit.tool()
@guarded()
async def diagnose_application(client: HistoryClient, app_id: str) -> dict[str, Any]:
    """Why an application failed or ran slowly, in plain words: failed jobs, stages and tasks with their
    errors, out-of-memory errors, data skew between tasks, spill to disk and long garbage collection."""
    app = await client.application(app_id)
    jobs, stages, executors = await asyncio.gather(client.jobs(app), client.stages(app), client.executors(app))
    with_failures, heavy = stages_to_inspect(stages)
    failed_tasks = await _failed_tasks(client, app, with_failures)
    summaries = await _gather(client.task_summary(app, stage, attempt, QUANTILES) for stage, attempt in heavy)
    evidence = Evidence(
        application=app.document,
        jobs=jobs,
        stages=stages,
        executors=executors,
        failed_tasks=failed_tasks,
        summaries={key: summary for key, summary in zip(heavy, summaries, strict=True) if summary},
    )
    return {"application": app.id, "name": app.document.get("name"), **diagnose(evidence).as_dict()}


def load_settings(**overrides: Any) -> KitSettings:
    """The server's kit settings from `KIT_SPARK_*` (keyword arguments win; the port defaults to 8302), with
    the gateway's Host accepted.

    Raises:
        ConfigurationError: the settings are refused (no AuthZEN credential, a URL that is not absolute, ...).
    """
    return KitSettings.behind_gateway(kit.name, default_port=DEFAULT_PORT, **overrides)
