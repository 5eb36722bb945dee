"""A read-only client of the Spark History Server's REST API (`<history_url>/api/v1`).

The History Server replays event logs; it serves the same `/api/v1` as a running driver's UI, so this client
works against either. Applications run by a cluster manager with attempts (YARN cluster mode) are addressed
as `/applications/<id>/<attemptId>/...`; the client resolves the latest attempt once per application.

Settings: `PORTCULLIS_SPARK_HISTORY_URL` (default http://127.0.0.1:18080, the local backend's History Server)
and `PORTCULLIS_SPARK_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from portcullis_contracts.problems import validation_problems
from servers.spark.errors import ApplicationNotFound, HistoryServerError, InvalidRequest

__all__ = [
    "DEFAULT_HISTORY_URL",
    "DEFAULT_TIMEOUT_SECONDS",
    "Application",
    "HistoryClient",
    "HistorySettings",
    "check_application_id",
    "load_history_settings",
]

DEFAULT_HISTORY_URL = "http://127.0.0.1:18080"
DEFAULT_TIMEOUT_SECONDS = 30.0  # the first request for an application replays its event log
_APPLICATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")

Json = Any  # the History Server's JSON documents, read with .get() and checked where used


class HistorySettings(BaseSettings):
    """Where the History Server is (`PORTCULLIS_SPARK_*`)."""

    model_config = SettingsConfigDict(env_prefix="PORTCULLIS_SPARK_", extra="ignore")

    history_url: str = DEFAULT_HISTORY_URL
    timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, le=300)

    @field_validator("history_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @property
    def display_url(self) -> str:
        """The URL for messages: without any credentials it may carry."""
        parts = urlsplit(self.history_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))


def load_history_settings() -> HistorySettings:
    """The backend settings from the environment.

    Raises:
        HistoryServerError: a setting is malformed (named, with why).
    """
    try:
        return HistorySettings()
    except ValidationError as exc:
        problems = validation_problems(exc.errors(), env_prefix="PORTCULLIS_SPARK_")
        raise HistoryServerError(f"the Spark server is misconfigured: {problems}") from None


def check_application_id(app_id: str) -> str:
    """`app_id` if it looks like a Spark application id (`local-1700000000000`, `application_1700_0001`).

    Raises:
        InvalidRequest: it does not; it is never put in a URL then.
    """
    if not _APPLICATION_ID.fullmatch(app_id):
        raise InvalidRequest(f"invalid Spark application id {app_id!r}: expected letters, digits, '_', '-', '.'")
    return app_id


class Application:
    """One application as the History Server lists it, with the path prefix of its latest attempt."""

    def __init__(self, document: Json):
        self.document: dict[str, Any] = document if isinstance(document, dict) else {}
        self.id = str(self.document.get("id", ""))
        attempts = self.document.get("attempts")
        self.attempts: list[dict[str, Any]] = [a for a in attempts if isinstance(a, dict)] if attempts else []

    @property
    def latest_attempt(self) -> dict[str, Any]:
        """The latest attempt (the History Server lists the most recent first); {} when none."""
        return self.attempts[0] if self.attempts else {}

    @property
    def path(self) -> str:
        """`/applications/<id>` or, for an application with attempt ids, `/applications/<id>/<attemptId>`."""
        attempt = self.latest_attempt.get("attemptId")
        return f"/applications/{self.id}" + (f"/{attempt}" if attempt else "")


class HistoryClient:
    """The History Server's `/api/v1`, asynchronously (an async context manager).

    Raises (every method):
        HistoryServerError: unreachable, timed out, or a non-JSON / unexpected answer.
    """

    def __init__(self, settings: HistorySettings, *, transport: httpx.AsyncBaseTransport | None = None):
        self._settings = settings
        self._http = httpx.AsyncClient(
            base_url=f"{settings.history_url}/api/v1",
            timeout=settings.timeout_seconds,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    async def __aenter__(self) -> HistoryClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def _get(
        self, path: str, params: dict[str, str | int] | None = None, *, app_id: str = "", missing_ok: bool = False
    ) -> Json:
        where = self._settings.display_url
        try:
            response = await self._http.get(path, params=params)
        except httpx.TimeoutException:
            raise HistoryServerError(
                f"the Spark History Server at {where} did not answer within {self._settings.timeout_seconds:g}s"
            ) from None
        except httpx.HTTPError as exc:
            reason = type(exc).__name__
            raise HistoryServerError(f"the Spark History Server at {where} is unreachable ({reason})") from None
        if response.status_code == 404 and app_id and _names_unknown_application(response.text):
            raise ApplicationNotFound(f"no Spark application {app_id!r} in the History Server")
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code != 200:
            raise HistoryServerError(
                f"the Spark History Server at {where} answered HTTP {response.status_code} for {path}"
            )
        try:
            return response.json()
        except ValueError:
            raise HistoryServerError(f"the Spark History Server at {where} answered non-JSON for {path}") from None

    async def _get_list(self, path: str, params: dict[str, str | int] | None = None, *, app_id: str = "") -> list[Any]:
        document = await self._get(path, params, app_id=app_id)
        if not isinstance(document, list):
            raise HistoryServerError(f"the Spark History Server answered an unexpected document for {path}")
        return [item for item in document if isinstance(item, dict)]

    async def applications(self, limit: int) -> list[Application]:
        """The most recent applications, newest first."""
        return [Application(item) for item in await self._get_list("/applications", {"limit": limit})]

    async def application(self, app_id: str) -> Application:
        """One application.

        Raises:
            InvalidRequest: a malformed id.
            ApplicationNotFound: the History Server does not know it.
        """
        check_application_id(app_id)
        document = await self._get(f"/applications/{app_id}", app_id=app_id)
        application = Application(document)
        if application.id != app_id:
            raise HistoryServerError(f"the Spark History Server answered another application for {app_id!r}")
        return application

    async def jobs(self, app: Application) -> list[dict[str, Any]]:
        return await self._get_list(f"{app.path}/jobs", app_id=app.id)

    async def stages(self, app: Application) -> list[dict[str, Any]]:
        """Every stage attempt, with its metrics and failure reason."""
        return await self._get_list(f"{app.path}/stages", app_id=app.id)

    async def executors(self, app: Application) -> list[dict[str, Any]]:
        """Every executor the application had, the driver and removed ones included."""
        return await self._get_list(f"{app.path}/allexecutors", app_id=app.id)

    async def failed_tasks(self, app: Application, stage_id: int, attempt_id: int, length: int) -> list[dict[str, Any]]:
        """Up to `length` failed tasks of one stage attempt, with their error messages."""
        path = f"{app.path}/stages/{stage_id}/{attempt_id}/taskList"
        return await self._get_list(path, {"status": "FAILED", "length": length}, app_id=app.id)

    async def task_summary(
        self, app: Application, stage_id: int, attempt_id: int, quantiles: tuple[float, ...]
    ) -> dict[str, Any] | None:
        """Task metric quantiles of one stage attempt; None when no task reported metrics."""
        path = f"{app.path}/stages/{stage_id}/{attempt_id}/taskSummary"
        params: dict[str, str | int] = {"quantiles": ",".join(f"{q:g}" for q in quantiles)}
        # 404 "No tasks reported metrics for <stage> / <attempt> yet." for a stage no task finished.
        document = await self._get(path, params, app_id=app.id, missing_ok=True)
        return document if isinstance(document, dict) else None


def _names_unknown_application(body: str) -> bool:
    # The History Server says "no such app: <id>" or "unknown app: <id>"; a 404 for a stage says otherwise.
    return body.startswith(("no such app", "unknown app"))
