"""The tickets server in-process (KitHarness) with its tracker settings pointed at the session's real Redmine
(tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from server_kit.testing import KitHarness
from servers.tickets import kit, local
from servers.tickets.settings import ENV_PREFIX, TicketsSettings
from tests.conftest import Backend

SERVER_JSON = Path(local.__file__).with_name("server.json")


@pytest.fixture(scope="session")
def tickets_settings(redmine: Backend) -> TicketsSettings:
    """The tracker settings of the local Redmine."""
    environment = redmine.environment
    return TicketsSettings(
        backend="redmine",
        redmine_url=environment[f"{ENV_PREFIX}REDMINE_URL"],
        redmine_api_key=SecretStr(environment[f"{ENV_PREFIX}REDMINE_API_KEY"]),
    )


@pytest.fixture(scope="module")
def harness(tickets_settings: TicketsSettings) -> Iterator[KitHarness]:
    with KitHarness(kit, SERVER_JSON, resources=[tickets_settings]) as running:
        yield running
