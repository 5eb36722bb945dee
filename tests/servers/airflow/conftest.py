"""The Airflow server against the session's real local Airflow (tests/conftest.py), through KitHarness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from server_kit.testing import KitHarness
from servers.airflow.server import kit
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
    """The server in-process, its tools talking to the session's Airflow."""
    with KitHarness(kit, SERVER_JSON, resources=[settings_of(airflow)]) as running:
        yield running
