"""The Spark server against the real local backend: event logs of the two local jobs (written once per
session) served by the real History Server on a free port of 127.0.0.1, stopped by PID at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server_kit.testing import KitHarness
from servers.spark.history import HistorySettings
from servers.spark.server import kit
from tests.conftest import Backend

SERVER_JSON = Path(__file__).parents[3] / "servers" / "spark" / "server.json"


@pytest.fixture(scope="session")
def harness(history_server: Backend) -> Iterator[KitHarness]:
    """The kit server in-process, pointed at the History Server."""
    settings = HistorySettings(history_url=history_server.environment["PORTCULLIS_SPARK_HISTORY_URL"])
    with KitHarness(kit, SERVER_JSON, resources=[settings]) as running:
        yield running
