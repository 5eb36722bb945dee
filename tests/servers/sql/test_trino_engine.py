"""The production engine's use of the `trino` client (a fake connection: a unit test of the calling code)."""

from __future__ import annotations

from typing import Any

import pytest
from trino import exceptions

from servers.sql.engines import TrinoEngine
from servers.sql.errors import EngineUnavailable, QueryFailed, QueryTimedOut


class FakeCursor:
    def __init__(self, rows: list[tuple[Any, ...]], error: BaseException | None = None):
        self.rows = rows
        self.error = error
        self.description = [("region",), ("n",)]
        self.executed: list[str] = []
        self.cancelled = False

    def execute(self, sql: str) -> None:
        self.executed.append(sql)
        if self.error is not None:
            raise self.error

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        return self.rows[:size]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def cancel(self) -> None:
        self.cancelled = True


class FakeConnection:
    def __init__(self, cursor: FakeCursor):
        self._cursor = cursor
        self.closed = False

    def cursor(self) -> FakeCursor:
        return self._cursor

    def close(self) -> None:
        self.closed = True


def engine_with(cursor: FakeCursor, calls: list[dict[str, Any]]) -> TrinoEngine:
    def connect(**options: Any) -> FakeConnection:
        calls.append(options)
        return FakeConnection(cursor)

    return TrinoEngine(
        host="trino.internal",
        port=443,
        catalogs=["hive"],
        default_catalog="hive",
        default_schema="default",
        connect=connect,
    )


def test_a_query_runs_as_the_caller_with_the_time_limit_as_a_session_property() -> None:
    calls: list[dict[str, Any]] = []
    cursor = FakeCursor([("emea", 1), ("amer", 2), ("apac", 3)])
    result = engine_with(cursor, calls).run("SELECT 1", max_rows=2, timeout_seconds=30, user="alice")
    assert calls[0]["user"] == "alice"
    assert calls[0]["session_properties"] == {"query_max_run_time": "30s"}
    assert result.rows == [("emea", 1), ("amer", 2)] and result.truncated and cursor.cancelled
    assert result.columns == ("region", "n")


def test_a_memory_limit_becomes_trinos_query_max_memory_session_property() -> None:
    calls: list[dict[str, Any]] = []
    cursor = FakeCursor([("emea", 1)])
    engine = TrinoEngine(
        host="trino.internal",
        port=443,
        catalogs=["hive"],
        default_catalog="hive",
        default_schema="default",
        connect=lambda **options: calls.append(options) or FakeConnection(cursor),  # type: ignore[func-returns-value]
        memory_limit="1GB",
    )
    engine.run("SELECT 1", max_rows=1, timeout_seconds=30, user="alice")
    assert calls[0]["session_properties"] == {"query_max_run_time": "30s", "query_max_memory": "1GB"}


def test_trino_errors_become_clear_tool_errors() -> None:
    timeout = exceptions.TrinoQueryError({"errorName": "EXCEEDED_TIME_LIMIT", "message": "Query exceeded maximum time"})
    with pytest.raises(QueryTimedOut, match="longer than 5 s"):
        engine_with(FakeCursor([], timeout), []).run("SELECT 1", max_rows=1, timeout_seconds=5, user="bob")
    user_error = exceptions.TrinoUserError({"errorName": "TYPE_MISMATCH", "message": "line 1:8: Cannot cast\nmore"})
    with pytest.raises(QueryFailed, match="Trino refused the query: line 1:8: Cannot cast$"):
        engine_with(FakeCursor([], user_error), []).run("SELECT 1", max_rows=1, timeout_seconds=5, user="bob")
    down = exceptions.TrinoConnectionError("connection refused")
    with pytest.raises(EngineUnavailable, match="Trino at trino.internal:443 is unreachable"):
        engine_with(FakeCursor([], down), []).run("SELECT 1", max_rows=1, timeout_seconds=5, user="bob")


def test_metadata_is_read_from_each_configured_catalog() -> None:
    cursor = FakeCursor([("hive", "ads", "campaigns", "campaign_id", "integer")])
    schemas = engine_with(cursor, []).table_schemas()
    assert schemas == {"hive": {"ads": {"campaigns": {"campaign_id": "integer"}}}}
    assert cursor.executed[0].startswith(
        'SELECT table_catalog, table_schema, table_name, column_name, data_type FROM "hive".'
    )
