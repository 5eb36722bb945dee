"""The Airflow server against the session's real local Airflow (tests/conftest.py), through KitHarness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from server_kit.testing import KitHarness
from servers.airflow.server import AirflowBackend, configure, kit
from servers.airflow.settings import AirflowSettings
from tests.conftest import Backend

ROOT = Path(__file__).resolve().parents[3]
SERVER_JSON = ROOT / "servers" / "airflow" / "server.json"


def settings_of(backend: Backend) -> AirflowSettings:
    """The server's settings pointing at the session's Airflow."""
    return AirflowSettings(
        api_url=backend.environment["PORTCULLIS_AIRFLOW_API_URL"],
        username=backend.environment["PORTCULLIS_AIRFLOW_USERNAME"],
        password=SecretStr(backend.environment["PORTCULLIS_AIRFLOW_PASSWORD"]),
    )


@pytest.fixture(scope="session")
def harness(airflow: Backend) -> Iterator[KitHarness]:
    with KitHarness(kit, SERVER_JSON) as running:
        yield running


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[AirflowBackend | None]:
    """Tools talk to the session's Airflow (tests that need no backend get none); reset afterwards."""
    if "airflow" not in request.fixturenames and "harness" not in request.fixturenames:
        yield None
        return
    running: Backend = request.getfixturevalue("airflow")
    chosen = AirflowBackend(settings_of(running))
    configure(chosen)
    yield chosen
    configure(None)
