"""A small client of the Airflow 3 REST API (`/api/v2`), logged in as the server's service account.

The JWT comes from `POST /auth/token` (the simple auth manager's login, and any auth manager that serves it) and
is kept by `TokenCache` until shortly before its `exp`; a 401 or 403 on a cached token drops it and the request
is retried once with a fresh one. Each tool call opens its own `AirflowApi` (one HTTP connection pool per call, so
nothing is tied to an event loop); the token outlives it.

Failures become `AirflowError`s with one readable line: Airflow down names the URL, an unknown id says which,
and any other 4xx passes Airflow's own `detail` on in words. The password and the token never appear in a
message or a log.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from servers.airflow.errors import (
    AirflowAuthFailed,
    AirflowError,
    AirflowNotFound,
    AirflowRejected,
    AirflowUnavailable,
)
from servers.airflow.settings import AirflowSettings

__all__ = ["AirflowApi", "TokenCache", "detail_text", "token_expiry"]

API = "/api/v2"
TOKEN_PATH = "/auth/token"
_MAX_DETAIL_CHARS = 500


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (seconds since the epoch), read without verifying it; None when absent.

    Only used to refresh the token before it expires; Airflow verifies it.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def detail_text(response: httpx.Response) -> str:
    """Airflow's error `detail` in words: a string as is, FastAPI's validation errors as `field: message`."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:_MAX_DETAIL_CHARS] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, str):
        return detail[:_MAX_DETAIL_CHARS]
    if isinstance(detail, list):
        words = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(part) for part in item.get("loc", []) if part != "body")
                words.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", "")))
            else:
                words.append(str(item))
        return "; ".join(words)[:_MAX_DETAIL_CHARS]
    return json.dumps(detail)[:_MAX_DETAIL_CHARS]


def segment(value: str) -> str:
    """`value` as one URL path segment (run ids hold `:` and `+`)."""
    return quote(value, safe="")


class TokenCache:
    """The service account's current JWT, shared by every call of the server."""

    def __init__(self) -> None:
        self._token = ""
        self._expires_at: float | None = None

    def current(self, margin_seconds: float) -> str:
        """The cached token, or "" when there is none or it expires within `margin_seconds`."""
        if self._token and self._expires_at is not None and self._expires_at - margin_seconds <= time.time():
            self.clear()
        return self._token

    def store(self, token: str) -> None:
        self._token = token
        self._expires_at = token_expiry(token)

    def clear(self) -> None:
        self._token = ""
        self._expires_at = None


class AirflowApi:
    """A connection to Airflow, shared by concurrent calls (an async context manager: closed when it ends)."""

    def __init__(
        self, settings: AirflowSettings, tokens: TokenCache, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._url = settings.api_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self._url, timeout=settings.timeout_seconds, transport=transport)

    @property
    def settings(self) -> AirflowSettings:
        """Where Airflow is and how the server logs in (the password stays a `SecretStr`)."""
        return self._settings

    async def __aenter__(self) -> AirflowApi:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._http.aclose()

    # -- reads ---------------------------------------------------------------------------------------------------

    async def dags(self, *, limit: int, tags: list[str], pattern: str | None) -> dict[str, Any]:
        """`GET /dags`: the DAGs (ordered by id) and `total_entries`."""
        params: dict[str, Any] = {"limit": limit, "order_by": "dag_id", "tags": tags}
        if pattern:
            params["dag_id_pattern"] = pattern
        return await self._json("GET", "/dags", params=params)

    async def dag(self, dag_id: str) -> dict[str, Any]:
        """`GET /dags/{dag_id}`.

        Raises:
            AirflowNotFound: no such DAG.
        """
        return await self._json("GET", f"/dags/{segment(dag_id)}", missing=f"unknown DAG {dag_id!r}")

    async def dag_runs(self, dag_id: str, *, limit: int, state: str | None = None) -> dict[str, Any]:
        """`GET /dags/{dag_id}/dagRuns`, newest first."""
        params: dict[str, Any] = {"limit": limit, "order_by": "-run_after"}
        if state:
            params["state"] = [state]
        return await self._json(
            "GET", f"/dags/{segment(dag_id)}/dagRuns", params=params, missing=f"unknown DAG {dag_id!r}"
        )

    async def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """`GET /dags/{dag_id}/dagRuns/{run_id}`."""
        return await self._json(
            "GET", self._run_path(dag_id, run_id), missing=f"unknown run {run_id!r} of DAG {dag_id!r}"
        )

    async def task_instances(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """`GET .../taskInstances` of one run."""
        return await self._json(
            "GET",
            f"{self._run_path(dag_id, run_id)}/taskInstances",
            params={"limit": 1000},
            missing=f"unknown run {run_id!r} of DAG {dag_id!r}",
        )

    async def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
        """One task instance of a run (`map_index` -1 for an unmapped task)."""
        path = f"{self._run_path(dag_id, run_id)}/taskInstances/{segment(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        return await self._json(
            "GET", path, missing=f"unknown task {task_id!r} (map index {map_index}) in run {run_id!r} of {dag_id!r}"
        )

    async def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int) -> list[Any]:
        """The whole log of one try, as Airflow's structured entries (`content`)."""
        params: dict[str, Any] = {"full_content": "true"}
        if map_index >= 0:
            params["map_index"] = map_index
        body = await self._json(
            "GET",
            f"{self._run_path(dag_id, run_id)}/taskInstances/{segment(task_id)}/logs/{try_number}",
            params=params,
            missing=f"no try {try_number} of task {task_id!r} in run {run_id!r} of {dag_id!r}",
        )
        content = body.get("content", [])
        return content if isinstance(content, list) else [content]

    # -- writes --------------------------------------------------------------------------------------------------

    async def trigger(self, dag_id: str, *, conf: Mapping[str, Any], note: str) -> dict[str, Any]:
        """`POST /dags/{dag_id}/dagRuns`: a manual run now (no logical date)."""
        body = {"logical_date": None, "conf": dict(conf), "note": note}
        return await self._json(
            "POST", f"/dags/{segment(dag_id)}/dagRuns", body=body, missing=f"unknown DAG {dag_id!r}"
        )

    async def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        """`PATCH /dags/{dag_id}` with `is_paused`."""
        return await self._json(
            "PATCH",
            f"/dags/{segment(dag_id)}",
            params={"update_mask": "is_paused"},
            body={"is_paused": paused},
            missing=f"unknown DAG {dag_id!r}",
        )

    # -- plumbing ------------------------------------------------------------------------------------------------

    @staticmethod
    def _run_path(dag_id: str, run_id: str) -> str:
        return f"/dags/{segment(dag_id)}/dagRuns/{segment(run_id)}"

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        missing: str = "not found",
    ) -> dict[str, Any]:
        response = await self._send(method, API + path, params=params, body=body)
        if response.status_code == 404:
            raise AirflowNotFound(f"{missing} (Airflow: {detail_text(response)})")
        if response.status_code in (401, 403):
            raise AirflowAuthFailed(
                f"Airflow refused the service account ({response.status_code}): {detail_text(response)}"
            )
        if 400 <= response.status_code < 500:
            raise AirflowRejected(f"Airflow refused the request ({response.status_code}): {detail_text(response)}")
        if response.status_code >= 500:
            raise AirflowUnavailable(f"Airflow at {self._url} failed ({response.status_code}): {detail_text(response)}")
        try:
            data = response.json()
        except ValueError:
            raise AirflowError(
                f"Airflow at {self._url} answered {method} {path} with something that is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise AirflowError(f"Airflow at {self._url} answered {method} {path} with an unexpected shape")
        return data

    async def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None, body: Any) -> httpx.Response:
        cached = bool(self._tokens.current(self._settings.token_refresh_seconds))
        response = await self._request(method, path, params=params, body=body, token=await self._token())
        # Airflow answers an expired or unverifiable JWT with 401 or 403 ("Invalid JWT token"): a token that
        # came from the cache is replaced once; one fresh from the login is not retried.
        if response.status_code in (401, 403) and cached:
            self._tokens.clear()
            response = await self._request(method, path, params=params, body=body, token=await self._token())
        return response

    async def _request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None, body: Any, token: str
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            return await self._http.request(method, path, params=params, json=body, headers=headers)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: httpx.TransportError) -> AirflowUnavailable:
        if isinstance(exc, httpx.TimeoutException):
            return AirflowUnavailable(
                f"Airflow at {self._url} did not answer within {self._settings.timeout_seconds:g}s"
            )
        return AirflowUnavailable(f"Airflow at {self._url} is unreachable ({type(exc).__name__}): is it running?")

    async def _token(self) -> str:
        cached = self._tokens.current(self._settings.token_refresh_seconds)
        if cached:
            return cached
        password = self._settings.password.get_secret_value()
        if not password:
            raise AirflowAuthFailed("no Airflow service account password: set PORTCULLIS_AIRFLOW_PASSWORD")
        credentials = {"username": self._settings.username, "password": password}
        try:
            response = await self._http.post(TOKEN_PATH, json=credentials)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code in (400, 401, 403):
            raise AirflowAuthFailed(
                f"Airflow at {self._url} refused the service account {self._settings.username!r} "
                f"({response.status_code}): check PORTCULLIS_AIRFLOW_USERNAME and PORTCULLIS_AIRFLOW_PASSWORD"
            )
        if response.status_code == 404:
            raise AirflowAuthFailed(f"Airflow at {self._url} has no {TOKEN_PATH}: is this the Airflow 3 API server?")
        if response.status_code >= 300:
            raise AirflowUnavailable(
                f"Airflow at {self._url} failed the login ({response.status_code}): {detail_text(response)}"
            )
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            token = None
        if not isinstance(token, str) or not token:
            raise AirflowAuthFailed(f"Airflow at {self._url} answered the login without an access token")
        self._tokens.store(token)
        return token
