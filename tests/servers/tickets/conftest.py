"""The tickets server's environment pointed at the session's real Redmine (tests/conftest.py), and a KitHarness
serving the tickets server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from server_kit.testing import KitHarness
from servers.tickets import kit, local
from tests.conftest import Backend

SERVER_JSON = Path(local.__file__).with_name("server.json")


@pytest.fixture
def redmine_env(redmine: Backend, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """The tickets server's environment pointing at the local Redmine, for one test."""
    for name in [name for name in os.environ if name.startswith("PORTCULLIS_TICKETS_")]:
        monkeypatch.delenv(name)
    for name, value in redmine.environment.items():
        monkeypatch.setenv(name, value)
    return redmine


@pytest.fixture(scope="module")
def harness() -> Iterator[KitHarness]:
    with KitHarness(kit, SERVER_JSON) as running:
        yield running
