"""The Airflow client's own logic against a fake Airflow (httpx.MockTransport): token reuse and refresh, and
how Airflow's answers become errors in words. The real Airflow is exercised in test_tools.py.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr

from servers.airflow.client import AirflowApi, TokenCache, detail_text, token_expiry
from servers.airflow.errors import AirflowAuthFailed, AirflowNotFound, AirflowRejected, AirflowUnavailable
from servers.airflow.settings import AirflowSettings

URL = "http://airflow.test:8080"
SETTINGS = AirflowSettings(api_url=URL, username="svc", password=SecretStr("s3cret-password"))


def jwt(exp: float) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS512'})}.{part({'sub': 'svc', 'exp': exp})}.signature"


class FakeAirflow:
    """Answers /auth/token with fresh JWTs and /api/v2 calls as scripted; records what it was sent."""

    def __init__(self, *answers: httpx.Response, ttl: float = 3600):
        self.answers = list(answers)
        self.ttl = ttl
        self.logins = 0
        self.tokens_seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            self.logins += 1
            return httpx.Response(201, json={"access_token": jwt(time.time() + self.ttl + self.logins)})
        self.tokens_seen.append(request.headers["Authorization"])
        return self.answers.pop(0)


def fetch_dag(fake: FakeAirflow, tokens: TokenCache) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with AirflowApi(SETTINGS, tokens, transport=httpx.MockTransport(fake)) as api:
            return await api.dag("etl")

    return anyio.run(run)


def test_the_token_is_reused_until_it_nears_expiry() -> None:
    fake = FakeAirflow(*(httpx.Response(200, json={"dag_id": "etl"}) for _ in range(3)), ttl=3600)
    tokens = TokenCache()
    for _ in range(2):
        fetch_dag(fake, tokens)
    assert fake.logins == 1
    tokens.store(jwt(time.time() + 30))  # inside the 60 s refresh margin
    fetch_dag(fake, tokens)
    assert fake.logins == 2


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_cached_token_is_replaced_once_and_the_call_retried(status: int) -> None:
    fake = FakeAirflow(httpx.Response(status, json={"detail": "Invalid JWT token"}), httpx.Response(200, json={}))
    tokens = TokenCache()
    tokens.store(jwt(time.time() + 3600))
    assert fetch_dag(fake, tokens) == {}
    assert fake.logins == 1 and len(set(fake.tokens_seen)) == 2


def test_a_fresh_token_that_is_refused_is_not_retried_forever() -> None:
    fake = FakeAirflow(httpx.Response(403, json={"detail": "Forbidden"}))
    with pytest.raises(AirflowAuthFailed, match=r"refused the service account \(403\): Forbidden"):
        fetch_dag(fake, TokenCache())
    assert fake.logins == 1


def test_a_404_names_the_unknown_dag_and_passes_airflows_detail_on() -> None:
    fake = FakeAirflow(httpx.Response(404, json={"detail": "The Dag with ID: `etl` was not found"}))
    with pytest.raises(AirflowNotFound, match=r"unknown DAG 'etl' \(Airflow: The Dag with ID: `etl` was not found\)"):
        fetch_dag(fake, TokenCache())


def test_a_validation_error_is_passed_on_in_words() -> None:
    detail = {"detail": [{"loc": ["body", "conf"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]}
    fake = FakeAirflow(httpx.Response(422, json=detail))
    with pytest.raises(AirflowRejected, match=r"\(422\): conf: Input should be a valid dictionary"):
        fetch_dag(fake, TokenCache())


def test_a_server_error_names_the_url() -> None:
    fake = FakeAirflow(httpx.Response(500, text="Internal Server Error"))
    with pytest.raises(AirflowUnavailable, match=rf"Airflow at {URL} failed \(500\): Internal Server Error"):
        fetch_dag(fake, TokenCache())


def test_a_login_refusal_names_the_settings_but_never_the_password() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "Invalid credentials"})

    async def run() -> None:
        async with AirflowApi(SETTINGS, TokenCache(), transport=httpx.MockTransport(refuse)) as api:
            await api.dag("etl")

    with pytest.raises(AirflowAuthFailed) as caught:
        anyio.run(run)
    assert "PORTCULLIS_AIRFLOW_PASSWORD" in str(caught.value)
    assert "s3cret-password" not in str(caught.value)


def test_no_password_is_a_clear_error_before_airflow_is_asked() -> None:
    async def run() -> None:
        settings = AirflowSettings(api_url=URL, password=SecretStr(""))
        async with AirflowApi(settings, TokenCache(), transport=httpx.MockTransport(FakeAirflow())) as api:
            await api.dag("etl")

    with pytest.raises(AirflowAuthFailed, match="set PORTCULLIS_AIRFLOW_PASSWORD"):
        anyio.run(run)


def test_run_ids_are_sent_as_one_path_segment() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(201, json={"access_token": jwt(time.time() + 3600)})
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"state": "failed"})

    async def run() -> None:
        async with AirflowApi(SETTINGS, TokenCache(), transport=httpx.MockTransport(record)) as api:
            await api.dag_run("etl", "manual__2026-11-24T18:27:47+00:00/x")

    anyio.run(run)
    assert seen == ["/api/v2/dags/etl/dagRuns/manual__2026-11-24T18%3A27%3A47%2B00%3A00%2Fx"]


def test_token_expiry_reads_exp_and_tolerates_garbage() -> None:
    assert token_expiry(jwt(1234.0)) == 1234.0
    assert token_expiry("not-a-jwt") is None
    assert token_expiry("a.!!!.c") is None


def test_detail_text_handles_text_and_odd_shapes() -> None:
    assert detail_text(httpx.Response(400, text="plain words")) == "plain words"
    assert detail_text(httpx.Response(400, json={"detail": {"code": 1}})) == '{"code": 1}'
