"""The Airflow MCP server: see DAGs, their runs and task instances, diagnose a failed task from its log, and
(for a DAG's owners) trigger, pause and unpause DAGs, on the Airflow 3 REST API (`/api/v2`).

Reads are guarded by the catalog (who may reach the server). Each write tool is `mutating` (the person confirms
it first) and, before it acts, asks the policy `operate` on the DAG, labelled `dag/<dag_id>` with the DAG's
`owners` as Airflow lists them: only an owner (by user id or group) may operate it (reason `not_dag_owner`).
Airflow is called as the server's service account; runs it triggers carry a note naming the person.

Settings: the kit's `KIT_AIRFLOW_*`; Airflow's `PORTCULLIS_AIRFLOW_*` (`AirflowSettings`), read once when the
server starts. One connection to Airflow (`AirflowApi`, with the service account's token) serves every call; it
is opened when the server starts and closed when it stops.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from portcullis_contracts.problems import validation_problems
from server_kit import Caller, Dataset, Kit, KitSettings, guarded
from servers.airflow.client import AirflowApi, TokenCache
from servers.airflow.diagnosis import diagnose, parse_entries, render
from servers.airflow.errors import AirflowError, InvalidArgument
from servers.airflow.settings import AirflowSettings

__all__ = [
    "DEFAULT_PORT",
    "OPERATE_ACTION",
    "airflow_api",
    "airflow_settings",
    "airflow_tokens",
    "kit",
    "load_settings",
]

DEFAULT_PORT = 8303
OPERATE_ACTION = "operate"
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")  # Airflow's KEY_REGEX for DAG and task ids
_MAX_RUN_ID = 250
_MAX_NOTE = 1000
_LAST_RUN_CONCURRENCY = 8
_FAILED_STATES = frozenset({"failed", "up_for_retry", "upstream_failed"})

kit = Kit(
    "airflow",
    title="Airflow",
    instructions=(
        "Airflow 3 workflows. list_dags shows each DAG with its owners, tags, paused flag and last run; "
        "list_dag_runs and list_task_instances drill into runs; get_task_logs reads one try's log and extracts "
        "the failure reason and traceback tail. trigger_dag_run, pause_dag and unpause_dag change Airflow: the "
        "person confirms each, and only the DAG's owners (by user or group) may use them."
    ),
)


@kit.resource
def airflow_settings() -> AirflowSettings:
    """Where Airflow is, read once from `PORTCULLIS_AIRFLOW_*` when the server starts.

    Raises:
        AirflowError: a setting is invalid (named, with why).
    """
    try:
        return AirflowSettings()
    except ValidationError as exc:
        problems = validation_problems(exc.errors())
        raise AirflowError(f"invalid PORTCULLIS_AIRFLOW_* settings: {problems}") from None


@kit.resource
def airflow_tokens() -> TokenCache:
    """The service account's token, shared by every call (fetched at the first call that needs one)."""
    return TokenCache()


@kit.resource
async def airflow_api(settings: AirflowSettings, tokens: TokenCache) -> AsyncIterator[AirflowApi]:
    """The server's connection to Airflow, shared by every call, closed when the server stops."""
    async with AirflowApi(settings, tokens) as api:
        yield api


# -- tools: reads ------------------------------------------------------------------------------------------------


@kit.tool()
@guarded()
async def list_dags(
    api: AirflowApi,
    tag: str | None = None,
    dag_id_pattern: str | None = None,
    limit: Annotated[int, Field(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """List DAGs with their owners, tags, paused flag, schedule and last run (state, when).

    Filter by one tag and/or a DAG id pattern (SQL LIKE, e.g. `ads_%`).
    """
    page = await api.dags(limit=limit, tags=[tag] if tag else [], pattern=dag_id_pattern)
    dags = [dag for dag in page.get("dags", []) if isinstance(dag, dict)]
    gate = asyncio.Semaphore(_LAST_RUN_CONCURRENCY)

    async def last_run(dag_id: str) -> dict[str, Any] | None:
        async with gate:
            runs = (await api.dag_runs(dag_id, limit=1)).get("dag_runs", [])
        return _run_summary(runs[0]) if runs else None

    last = await asyncio.gather(*(last_run(str(dag["dag_id"])) for dag in dags))
    return {
        "total": page.get("total_entries", len(dags)),
        "dags": [_dag_summary(dag, run) for dag, run in zip(dags, last, strict=True)],
    }


@kit.tool()
@guarded()
async def list_dag_runs(
    api: AirflowApi,
    dag_id: str,
    state: Literal["queued", "running", "success", "failed"] | None = None,
    limit: Annotated[int, Field(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """The latest runs of a DAG, newest first (optionally only those in one state)."""
    _check_key(dag_id, "dag_id")
    page = await api.dag_runs(dag_id, limit=limit, state=state)
    runs = [_run_summary(run) for run in page.get("dag_runs", []) if isinstance(run, dict)]
    return {"dag_id": dag_id, "total": page.get("total_entries", len(runs)), "runs": runs}


@kit.tool()
@guarded()
async def list_task_instances(api: AirflowApi, dag_id: str, run_id: str) -> dict[str, Any]:
    """The task instances of one DAG run: state, try number, start, end and duration of each task."""
    _check_key(dag_id, "dag_id")
    _check_run_id(run_id)
    run = await api.dag_run(dag_id, run_id)
    page = await api.task_instances(dag_id, run_id)
    tasks = [_task_summary(ti) for ti in page.get("task_instances", []) if isinstance(ti, dict)]
    return {"dag_id": dag_id, "run_id": run_id, "run_state": run.get("state"), "tasks": tasks}


@kit.tool()
@guarded()
async def get_task_logs(
    api: AirflowApi,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: Annotated[int | None, Field(ge=1)] = None,
    map_index: Annotated[int, Field(ge=-1)] = -1,
    tail_lines: Annotated[int, Field(ge=0, le=200)] = 20,
) -> str:
    """One try's log of a task instance (default: its latest try), read for the failure: the exception, the
    traceback tail, the error lines and the last lines of the log.
    """
    _check_key(dag_id, "dag_id")
    _check_run_id(run_id)
    _check_key(task_id, "task_id")
    ti = await api.task_instance(dag_id, run_id, task_id, map_index)
    tries = int(ti.get("try_number") or 0)
    state = str(ti.get("state") or "none")
    title = f"{dag_id} / {run_id} / {task_id}" + (f" [{map_index}]" if map_index >= 0 else "")
    if tries == 0:
        return f"{title}: state {state}; the task has not run yet, so it has no log."
    chosen = try_number or tries
    if chosen > tries:
        raise InvalidArgument(f"task {task_id!r} has {tries} tr{'y' if tries == 1 else 'ies'}; ask for 1..{tries}")
    content = await api.task_log(dag_id, run_id, task_id, chosen, map_index)
    outcome = state if chosen == tries else "an earlier try (it did not end the task)"
    header = f"{title}, try {chosen} of {tries}: {outcome}"
    diagnosis = diagnose(parse_entries(content), tail_lines=tail_lines)
    failed = chosen < tries or state in _FAILED_STATES
    return f"{header}\n\n{render(diagnosis, failed=failed)}"


# -- tools: writes (owners only) ---------------------------------------------------------------------------------


@kit.tool(mutating=True)
@guarded(arguments=["dag_id"])
async def trigger_dag_run(
    caller: Caller, api: AirflowApi, dag_id: str, conf: dict[str, Any] | None = None, note: str = ""
) -> dict[str, Any]:
    """Trigger a run of a DAG now, with an optional `conf` (JSON object) and note. Only the DAG's owners may."""
    _check_key(dag_id, "dag_id")
    if len(note) > _MAX_NOTE:
        raise InvalidArgument(f"note is {len(note)} characters; at most {_MAX_NOTE}")
    dag = await _require_operator(caller, api, dag_id)
    signed = f"Triggered by {caller.user} through Portcullis" + (f": {note}" if note else "")
    run = await api.trigger(dag_id, conf=conf or {}, note=signed)
    result = {"dag_id": dag_id, **_run_summary(run)}
    if dag.get("is_paused"):
        result["warning"] = "the DAG is paused: this run stays queued until it is unpaused"
    return result


@kit.tool(mutating=True)
@guarded(arguments=["dag_id"])
async def pause_dag(caller: Caller, api: AirflowApi, dag_id: str) -> dict[str, Any]:
    """Pause a DAG: no new runs are scheduled or started until it is unpaused. Only the DAG's owners may."""
    return await _set_paused(caller, api, dag_id, paused=True)


@kit.tool(mutating=True)
@guarded(arguments=["dag_id"])
async def unpause_dag(caller: Caller, api: AirflowApi, dag_id: str) -> dict[str, Any]:
    """Unpause a DAG: its schedule and queued runs resume. Only the DAG's owners may."""
    return await _set_paused(caller, api, dag_id, paused=False)


async def _set_paused(caller: Caller, api: AirflowApi, dag_id: str, *, paused: bool) -> dict[str, Any]:
    _check_key(dag_id, "dag_id")
    dag = await _require_operator(caller, api, dag_id)
    updated = await api.set_paused(dag_id, paused)
    return {"dag_id": dag_id, "paused": bool(updated.get("is_paused")), "was_paused": bool(dag.get("is_paused"))}


async def _require_operator(caller: Caller, api: AirflowApi, dag_id: str) -> dict[str, Any]:
    """The DAG, once the policy lets `caller` operate it (its owners, as Airflow lists them, decide).

    Raises:
        AirflowNotFound: no such DAG.
        AccessDenied: the caller is not one of its owners (or the policy cannot decide).
    """
    dag = await api.dag(dag_id)
    owners = [str(owner) for owner in dag.get("owners") or []]
    dataset = Dataset(
        f"dag/{dag_id}",
        business_group=api.settings.business_group,
        sensitivity="internal",
        properties={"owners": owners},
    )
    await caller.require(OPERATE_ACTION, dataset)
    return dag


# -- shapes and checks -------------------------------------------------------------------------------------------


def _dag_summary(dag: dict[str, Any], last_run: dict[str, Any] | None) -> dict[str, Any]:
    tags = [tag.get("name") if isinstance(tag, dict) else tag for tag in dag.get("tags") or []]
    return {
        "dag_id": dag.get("dag_id"),
        "owners": dag.get("owners") or [],
        "paused": dag.get("is_paused"),
        "tags": sorted(str(tag) for tag in tags if tag),
        "schedule": dag.get("timetable_description") or dag.get("timetable_summary"),
        "description": dag.get("description"),
        "has_import_errors": dag.get("has_import_errors", False),
        "last_run": last_run,
    }


def _run_summary(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": run.get("dag_run_id"),
        "state": run.get("state"),
        "run_type": run.get("run_type"),
        "queued_at": run.get("queued_at"),
        "start_date": run.get("start_date"),
        "end_date": run.get("end_date"),
        "duration_seconds": run.get("duration"),
        "triggered_by": run.get("triggering_user_name") or run.get("triggered_by"),
        "note": run.get("note"),
        "conf": run.get("conf") or {},
    }


def _task_summary(ti: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": ti.get("task_id"),
        "map_index": ti.get("map_index", -1),
        "state": ti.get("state"),
        "try_number": ti.get("try_number"),
        "max_tries": ti.get("max_tries"),
        "start_date": ti.get("start_date"),
        "end_date": ti.get("end_date"),
        "duration_seconds": ti.get("duration"),
        "operator": ti.get("operator_name") or ti.get("operator"),
    }


def _check_key(value: str, name: str) -> None:
    if not _KEY.fullmatch(value):
        raise InvalidArgument(f"{name} {value!r} is not valid: 1-250 letters, digits, '_', '.' or '-'")


def _check_run_id(run_id: str) -> None:
    if not run_id or len(run_id) > _MAX_RUN_ID or not run_id.isprintable():
        raise InvalidArgument(f"run_id {run_id[:60]!r} is not valid: 1-{_MAX_RUN_ID} printable characters")


def load_settings(**overrides: Any) -> KitSettings:
    """The server's kit settings from `KIT_AIRFLOW_*` (keyword arguments win), on port 8303 unless told, and
    accepting the gateway's Host header.

    Raises:
        ConfigurationError: the settings are refused (no AuthZEN credential, a URL that is not absolute, ...).
    """
    return KitSettings.behind_gateway(kit.name, default_port=DEFAULT_PORT, **overrides)
