"""The engines behind the SQL server: Trino in production, DuckDB on the sample data set locally.

Both take a query that `statements.analyze` has already resolved and qualified (the Trino dialect in,
each engine's dialect out), and both enforce the limits: at most `max_rows + 1` rows are fetched (one more
tells the caller the result was cut), and a query running past `timeout_seconds` is cancelled in the engine,
not merely abandoned. Engines are blocking; the server calls them from a worker thread.

The local engine opens its database read-only with external access (files, URLs, extensions) switched off,
so even a statement the parser let through could not write or read anything but the sample tables. It runs each
query in one of a few worker processes (`duckdb_worker.py`) with DuckDB's `memory_limit` and `threads` set and
locked, and the process's address space capped by the kernel: a value no limit of DuckDB bounds fails cleanly,
and a query that ignores the interrupt is ended by killing its process.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
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
_KILL_GRACE_SECONDS = 1.0  # after its own interrupt, how long a worker may take to answer before it is killed
_START_SECONDS = 30.0  # how long a new worker may take to open the database
# The worker's address space beyond DuckDB's memory_limit: the interpreter, DuckDB's code and thread stacks, the
# rows of a result. Measured: an idle worker maps ~600 MB; below 1 GB of headroom DuckDB fails to start threads.
_ADDRESS_SPACE_HEADROOM = 1536 * 1000**2
_WORKER = Path(__file__).with_name("duckdb_worker.py")
_SIZE = re.compile(r"^([1-9][0-9]*)(MB|GB)$")


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

    def close(self) -> None:
        """Release what the engine holds (the server is stopping)."""
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
    """The local engine: a DuckDB file opened read-only (the sample data set, `servers/sql/sample_data.py`).

    Queries run in up to `processes` worker processes, started on demand and reused; each has DuckDB's
    `memory_limit` ("1GB", "512MB") and `threads`, locked so no query changes them, and an address-space limit of
    `memory_limit` plus a fixed headroom. The server's own metadata query runs in-process.
    """

    dialect = "duckdb"

    def __init__(
        self,
        path: Path,
        *,
        default_schema: str = "public",
        memory_limit: str = "1GB",
        threads: int = 2,
        processes: int = 4,
    ):
        if not path.is_file():
            raise EngineUnavailable(
                f"the local SQL database {path} does not exist; run `python -m servers.sql.local setup`"
            )
        size = _SIZE.match(memory_limit)
        if size is None or threads < 1 or processes < 1:
            raise ValueError('memory_limit is a number of MB or GB ("512MB", "1GB"); threads and processes >= 1')
        self._config: dict[str, Any] = {
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": "",  # no spilling: a query's footprint stays in memory_limit, never on the disk
        }
        self._address_space = int(size[1]) * 1000 ** (2 if size[2] == "MB" else 3) + _ADDRESS_SPACE_HEADROOM
        self._path = path
        self._connection = duckdb.connect(str(path), read_only=True, config=self._config)
        self._connection.execute("SET lock_configuration = true")
        self.default_catalog = path.stem
        self.default_schema = default_schema
        self._metadata = _MetadataCache(self._read_metadata)
        self._processes = processes
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._started = 0
        self._workers_lock = threading.Lock()
        self._closed = False

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
        worker = self._take()
        started = time.perf_counter()
        try:
            answer = worker.ask((sql, max_rows, timeout_seconds), timeout_seconds + _KILL_GRACE_SECONDS)
        except BaseException:
            self._discard(worker)
            raise
        elapsed = (time.perf_counter() - started) * 1000
        if answer is None:  # no answer in time: the worker is stuck in a call that ignores the interrupt
            self._discard(worker)
            raise QueryTimedOut(f"the query ran longer than {timeout_seconds:g} s and was cancelled")
        self._idle.put(worker)
        if answer[0] == "ok":
            return ResultSet(answer[1], answer[2], answer[3], elapsed)
        if answer[0] == "timeout":
            raise QueryTimedOut(f"the query ran longer than {timeout_seconds:g} s and was cancelled")
        raise QueryFailed(f"the engine refused the query: {answer[1]}")

    def _take(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._workers_lock:
            if self._closed:
                raise EngineUnavailable("the local SQL engine is closed")
            start = self._started < self._processes
            if start:
                self._started += 1
        if not start:  # the server's slots keep this short: as many slots as processes
            return self._idle.get()
        try:
            return _Worker(self._path, self._address_space, self._config)
        except BaseException:
            with self._workers_lock:
                self._started -= 1
            raise

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._workers_lock:
            self._started -= 1

    def close(self) -> None:
        with self._workers_lock:
            self._closed = True
        while True:
            try:
                self._idle.get_nowait().kill()
            except queue.Empty:
                break
        self._connection.close()


class _Worker:
    """One `duckdb_worker.py` process and its two pipes."""

    def __init__(self, path: Path, address_space: int, config: Mapping[str, Any]):
        from multiprocessing.connection import Connection

        self._process = subprocess.Popen(
            [sys.executable, "-I", str(_WORKER), str(path), str(address_space), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        # The connections own duplicates of the pipes, so each descriptor is closed exactly once.
        self._requests = Connection(os.dup(self._process.stdin.fileno()), readable=False)
        self._answers = Connection(os.dup(self._process.stdout.fileno()), writable=False)
        self._process.stdin.close()
        self._process.stdout.close()
        ready = self.ask(None, _START_SECONDS)
        if ready is None or ready[0] != "ready":
            self.kill()
            reason = ready[1] if ready is not None and len(ready) > 1 else "it did not start"
            raise EngineUnavailable(f"the local SQL engine cannot open {path}: {reason}")

    def ask(self, request: tuple[Any, ...] | None, timeout: float) -> tuple[Any, ...] | None:
        """Send `request` (None: only wait) and wait up to `timeout` seconds for the answer (None: no answer).

        Raises:
            QueryFailed: the process died (the kernel's memory limit, a crash).
        """
        try:
            if request is not None:
                self._requests.send(request)
            if not self._answers.poll(timeout):
                return None
            answer: tuple[Any, ...] = self._answers.recv()
            return answer
        except (EOFError, OSError):
            raise QueryFailed("the engine stopped while running the query (it may have run out of memory)") from None

    def kill(self) -> None:
        self._process.kill()
        self._process.wait()
        self._requests.close()
        self._answers.close()


class TrinoEngine:
    """Production: a Trino (or Presto) coordinator through the `trino` client, queries run as the caller.

    The server authenticates as itself (`auth`) and asks Trino to run each query as the calling user, so
    Trino's own access control and audit see the person, not the server. Trino's `query_max_run_time` session
    property cancels a query in the coordinator at the time limit, and `query_max_memory` (when `memory_limit`
    is given; Trino takes the lower of it and the cluster's limit) kills a query past that much memory.
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
        memory_limit: str | None = None,
    ):
        if connect is None:
            import trino.dbapi

            connect = trino.dbapi.connect
        self._connect: Callable[..., Any] = connect
        self._options: dict[str, Any] = {"host": host, "port": port, "http_scheme": http_scheme, "auth": auth}
        self._catalogs = tuple(catalogs)
        self._limits = {"query_max_memory": memory_limit} if memory_limit else {}
        self.default_catalog = default_catalog
        self.default_schema = default_schema
        self._metadata = _MetadataCache(self._read_metadata)

    def table_schemas(self) -> TableSchemas:
        return self._metadata.get()

    def close(self) -> None:
        """Nothing to release: each query and metadata read opens its own connection."""

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
            session_properties={"query_max_run_time": f"{max(1, int(timeout_seconds))}s", **self._limits},
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
