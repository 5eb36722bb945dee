"""The engines behind the SQL server: Trino in production, DuckDB on the sample data set locally.

Both take a query that `statements.analyze` has already resolved and qualified (the Trino dialect in,
each engine's dialect out), and both enforce the limits: at most `max_rows + 1` rows are fetched (one more
tells the caller the result was cut), and a query running past `timeout_seconds` is cancelled in the engine,
not merely abandoned. Engines are blocking; the server calls them from a worker thread.

The local engine opens its database read-only with external access (files, URLs, extensions) switched off,
so even a statement the parser let through could not write or read anything but the sample tables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb

from servers.sql.errors import EngineUnavailable, QueryFailed, QueryTimedOut

__all__ = ["DuckDBEngine", "Engine", "ResultSet", "TrinoEngine"]

TableSchemas = dict[str, dict[str, dict[str, dict[str, str]]]]
_METADATA_TTL_SECONDS = 60.0


@dataclass(frozen=True)
class ResultSet:
    """Rows of a query. `truncated`: the engine had more rows than the limit."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool
    elapsed_ms: float


class Engine(Protocol):
    """What the server needs of an engine."""

    dialect: str  # sqlglot's name for the dialect the engine runs
    default_catalog: str
    default_schema: str

    def table_schemas(self) -> TableSchemas:
        """catalog -> schema -> table -> column -> type, for every table the engine serves."""
        ...

    def run(self, sql: str, *, max_rows: int, timeout_seconds: float, user: str) -> ResultSet:
        """Run one read-only statement for `user`."""
        ...


class _MetadataCache:
    """The table schemas, re-read at most once a minute (tables are added rarely; a query never waits long)."""

    def __init__(self, load: Callable[[], TableSchemas]):
        self._load = load
        self._lock = threading.Lock()
        self._value: TableSchemas | None = None
        self._loaded_at = 0.0

    def get(self) -> TableSchemas:
        with self._lock:
            if self._value is None or time.monotonic() - self._loaded_at > _METADATA_TTL_SECONDS:
                self._value = self._load()
                self._loaded_at = time.monotonic()
            return self._value


def _nest(rows: Sequence[Sequence[Any]]) -> TableSchemas:
    schemas: TableSchemas = {}
    for catalog, schema, table, column, data_type in rows:
        schemas.setdefault(catalog, {}).setdefault(schema, {}).setdefault(table, {})[column] = str(data_type)
    return schemas


class DuckDBEngine:
    """The local engine: a DuckDB file opened read-only (the sample data set, `servers/sql/sample_data.py`)."""

    dialect = "duckdb"

    def __init__(self, path: Path, *, default_schema: str = "public"):
        if not path.is_file():
            raise EngineUnavailable(
                f"the local SQL database {path} does not exist; run `python -m servers.sql.local setup`"
            )
        self._connection = duckdb.connect(
            str(path), read_only=True, config={"enable_external_access": False, "autoinstall_known_extensions": False}
        )
        self._connection.execute("SET lock_configuration = true")
        self.default_catalog = path.stem
        self.default_schema = default_schema
        self._metadata = _MetadataCache(self._read_metadata)

    def table_schemas(self) -> TableSchemas:
        return self._metadata.get()

    def _read_metadata(self) -> TableSchemas:
        rows = self._connection.cursor().execute(
            "SELECT table_catalog, table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = ? ORDER BY table_schema, table_name, ordinal_position",
            [self.default_catalog],
        )
        return _nest(rows.fetchall())

    def run(self, sql: str, *, max_rows: int, timeout_seconds: float, user: str) -> ResultSet:
        cursor = self._connection.cursor()  # its own connection to the same database: cancellable on its own
        timer = threading.Timer(timeout_seconds, cursor.interrupt)
        started = time.perf_counter()
        timer.start()
        try:
            result = cursor.execute(sql)
            columns = tuple(description[0] for description in result.description or ())
            rows = result.fetchmany(max_rows + 1)
        except duckdb.InterruptException:
            raise QueryTimedOut(f"the query ran longer than {timeout_seconds:g} s and was cancelled") from None
        except duckdb.Error as exc:
            raise QueryFailed(f"the engine refused the query: {_first_line(str(exc))}") from None
        finally:
            timer.cancel()
            cursor.close()
        return ResultSet(columns, rows[:max_rows], len(rows) > max_rows, (time.perf_counter() - started) * 1000)

    def close(self) -> None:
        self._connection.close()


class TrinoEngine:
    """Production: a Trino (or Presto) coordinator through the `trino` client, queries run as the caller.

    The server authenticates as itself (`auth`) and asks Trino to run each query as the calling user, so
    Trino's own access control and audit see the person, not the server. Trino's `query_max_run_time` session
    property cancels a query in the coordinator at the time limit.
    """

    dialect = "trino"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        catalogs: Sequence[str],
        default_catalog: str,
        default_schema: str,
        http_scheme: str = "https",
        auth: Any = None,
        connect: Callable[..., Any] | None = None,
    ):
        if connect is None:
            import trino.dbapi

            connect = trino.dbapi.connect
        self._connect: Callable[..., Any] = connect
        self._options: dict[str, Any] = {"host": host, "port": port, "http_scheme": http_scheme, "auth": auth}
        self._catalogs = tuple(catalogs)
        self.default_catalog = default_catalog
        self.default_schema = default_schema
        self._metadata = _MetadataCache(self._read_metadata)

    def table_schemas(self) -> TableSchemas:
        return self._metadata.get()

    def _read_metadata(self) -> TableSchemas:
        rows: list[Sequence[Any]] = []
        with self._cursor("portcullis-sql", 60.0) as cursor:
            for catalog in self._catalogs:
                cursor.execute(
                    f'SELECT table_catalog, table_schema, table_name, column_name, data_type FROM "{catalog}".'
                    "information_schema.columns WHERE table_schema <> 'information_schema'"
                )
                rows.extend(cursor.fetchall())
        return _nest(rows)

    def run(self, sql: str, *, max_rows: int, timeout_seconds: float, user: str) -> ResultSet:
        started = time.perf_counter()
        with self._cursor(user, timeout_seconds) as cursor:
            cursor.execute(sql)
            rows = cursor.fetchmany(max_rows + 1)
            columns = tuple(description[0] for description in cursor.description or ())
            if len(rows) > max_rows:
                cursor.cancel()
        return ResultSet(columns, rows[:max_rows], len(rows) > max_rows, (time.perf_counter() - started) * 1000)

    @contextmanager
    def _cursor(self, user: str, timeout_seconds: float) -> Iterator[Any]:
        from trino import exceptions

        connection: Any = self._connect(
            **self._options,
            user=user,
            catalog=self.default_catalog,
            schema=self.default_schema,
            session_properties={"query_max_run_time": f"{max(1, int(timeout_seconds))}s"},
            request_timeout=timeout_seconds + 5,
        )
        try:
            yield connection.cursor()
        except exceptions.TrinoQueryError as exc:
            if exc.error_name == "EXCEEDED_TIME_LIMIT":
                raise QueryTimedOut(f"the query ran longer than {timeout_seconds:g} s and was cancelled") from None
            raise QueryFailed(f"Trino refused the query: {_first_line(exc.message)}") from None
        except (exceptions.HttpError, exceptions.TrinoConnectionError, OSError) as exc:
            raise EngineUnavailable(
                f"Trino at {self._options['host']}:{self._options['port']} is unreachable: {_first_line(str(exc))}"
            ) from None
        finally:
            connection.close()


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "unknown error"


def schema_rows(schemas: Mapping[str, Mapping[str, Mapping[str, Mapping[str, str]]]]) -> list[tuple[str, str, str]]:
    """(catalog, schema, table) for every table, sorted."""
    return sorted((c, s, t) for c, ss in schemas.items() for s, ts in ss.items() for t in ts)
