"""The SQL server against the real local engine: the sample data set in DuckDB, built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server_kit.testing import KitHarness
from servers.sql import local
from servers.sql.server import SqlService, SqlSettings, kit

SERVER_JSON = Path(__file__).parents[3] / "servers" / "sql" / "server.json"


@pytest.fixture(scope="session")
def sql_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("sql-backend")
    local.setup(state)
    return local.database_path(state)


@pytest.fixture(scope="session")
def sql_service(sql_database: Path) -> Iterator[SqlService]:
    service = SqlService.from_settings(SqlSettings(database=sql_database, timeout_seconds=2.0, max_rows=100))
    yield service
    service.close()


@pytest.fixture(scope="session")
def harness(sql_service: SqlService) -> Iterator[KitHarness]:
    with KitHarness(kit, SERVER_JSON, resources=[sql_service]) as running:
        yield running
