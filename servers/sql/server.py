"""The SQL MCP server: browse and query the data warehouse (Trino/Presto; DuckDB locally), read-only, gated by table.

Every statement is parsed (Trino dialect) before anything runs: only SELECT/WITH/SHOW/DESCRIBE/EXPLAIN pass, and
every table a query reads, however deep in a sub-query or CTE, is decided by the policy (`read` on a dataset,
policies/data.polar) in one batch, labelled by the `datasets` of the server's reviewed server.json. The engine
then runs the query with its tables qualified exactly as they were decided, with a row limit and a time limit it
enforces itself.

Settings: the kit's `KIT_SQL_*`; the engine's `PORTCULLIS_SQL_*` (`SqlSettings`), read once when the server
starts, which opens the engine then (the `sql_settings` and `sql_service` resources) and closes it when it stops.
"""

from __future__ import annotations

import datetime
import decimal
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio.to_thread
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from portcullis_contracts.problems import validation_problems
from server_kit import AccessDenied, Caller, ConfigurationError, Kit, KitSettings, guarded
from server_kit.data import READ_ACTION
from servers.sql.engines import DuckDBEngine, Engine, ResultSet, TrinoEngine, schema_rows
from servers.sql.errors import SqlBusy, SqlRejected
from servers.sql.labels import Labels
from servers.sql.statements import (
    Describe,
    Explain,
    Query,
    ShowCatalogs,
    ShowSchemas,
    ShowTables,
    Statement,
    analyze,
    exists,
    not_readable,
    prepare,
)
from servers.sql.statements import parse_table_name as _parse_table_name

__all__ = [
    "DEFAULT_MAX_CONCURRENT_QUERIES",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_PORT",
    "DEFAULT_THREADS",
    "SqlService",
    "SqlSettings",
    "kit",
    "load_settings",
    "render_table",
    "sql_service",
    "sql_settings",
]

DEFAULT_PORT = 8301
DEFAULT_MAX_CONCURRENT_QUERIES = 4  # per server process; one more is told "busy", never queued
DEFAULT_MEMORY_LIMIT = "1GB"  # per engine process (DuckDB) or per query (Trino `query_max_memory`)
DEFAULT_THREADS = 2  # DuckDB threads per engine process
DEFAULT_ROWS = 100
MAX_CELL = 200
REVENUE_TABLE = "lake.ads.revenue_daily"

kit = Kit(
    "sql",
    title="SQL (Presto/Trino)",
    instructions=(
        "Browse catalogs, schemas and tables and run read-only SQL (Trino dialect) on the data warehouse. "
        "Only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN run; each table is readable only by its business group "
        "when it is sensitive. Results are cut at a row limit; ask for aggregates rather than raw rows."
    ),
)


class SqlSettings(BaseSettings):
    """The engine behind the server (`PORTCULLIS_SQL_*`)."""

    model_config = SettingsConfigDict(env_prefix="PORTCULLIS_SQL_", extra="ignore")

    engine: Literal["duckdb", "trino"] = "duckdb"
    database: Path = Path(".portcullis/backends/sql/lake.duckdb")
    # The reviewed server.json whose governance `datasets` label the tables (the decision point uses the same).
    server_json: Path = Path(__file__).with_name("server.json")
    default_schema: str = "public"
    max_rows: int = Field(default=1000, ge=1, le=100_000)
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_concurrent_queries: int = Field(default=DEFAULT_MAX_CONCURRENT_QUERIES, ge=1, le=256)
    # MB or GB: both engines read it (DuckDB's memory_limit, Trino's query_max_memory session property).
    memory_limit: str = Field(default=DEFAULT_MEMORY_LIMIT, pattern=r"^[1-9][0-9]{0,5}(MB|GB)$")
    threads: int = Field(default=DEFAULT_THREADS, ge=1, le=256)
    trino_host: str = ""
    trino_port: int = 443
    trino_http_scheme: Literal["http", "https"] = "https"
    trino_catalogs: list[str] = Field(default_factory=list)
    trino_catalog: str = ""
    trino_user: str = ""
    trino_password: SecretStr = SecretStr("")


@dataclass
class SqlService:
    """The engine, the table labels and the limits the tools share.

    At most `max_concurrent_queries` statements are analysed or run at once; one more is refused at once with
    `SqlBusy` rather than queued, so a burst of expensive statements cannot build a backlog everyone waits behind.
    """

    engine: Engine
    labels: Labels
    max_rows: int
    timeout_seconds: float
    max_concurrent_queries: int = DEFAULT_MAX_CONCURRENT_QUERIES

    def __post_init__(self) -> None:
        # A threading semaphore, taken without blocking: the service is shared by every event loop and thread.
        self._slots = threading.BoundedSemaphore(self.max_concurrent_queries)

    @classmethod
    def from_settings(cls, settings: SqlSettings) -> SqlService:
        """Build the engine the settings name.

        Raises:
            ConfigurationError: the labels file is unreadable, or Trino is chosen without a host and catalogs.
            EngineUnavailable: the local database does not exist.
        """
        labels = Labels.load(settings.server_json)
        engine: Engine
        if settings.engine == "trino":
            if not settings.trino_host or not settings.trino_catalogs:
                raise ConfigurationError("PORTCULLIS_SQL_TRINO_HOST and PORTCULLIS_SQL_TRINO_CATALOGS are required")
            import trino.auth

            password = settings.trino_password.get_secret_value()
            engine = TrinoEngine(
                host=settings.trino_host,
                port=settings.trino_port,
                http_scheme=settings.trino_http_scheme,
                catalogs=settings.trino_catalogs,
                default_catalog=settings.trino_catalog or settings.trino_catalogs[0],
                default_schema=settings.default_schema,
                auth=trino.auth.BasicAuthentication(settings.trino_user, password) if password else None,
                memory_limit=settings.memory_limit,
            )
        else:
            engine = DuckDBEngine(
                settings.database,
                default_schema=settings.default_schema,
                memory_limit=settings.memory_limit,
                threads=settings.threads,
                processes=settings.max_concurrent_queries,
            )
        return cls(engine, labels, settings.max_rows, settings.timeout_seconds, settings.max_concurrent_queries)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the concurrent-query slots for a statement's analysis and run.

        Raises:
            SqlBusy: every slot is taken.
        """
        if not self._slots.acquire(blocking=False):
            raise SqlBusy(
                f"the SQL server is busy ({self.max_concurrent_queries} queries running), try again in a moment"
            )
        try:
            yield
        finally:
            self._slots.release()

    async def analyze(self, sql: str) -> Statement:
        """`statements.analyze` on a worker thread (the caps in `limits.py` keep it short).

        Raises:
            SqlRejected: the statement is refused.
        """
        catalog, schema = self.engine.default_catalog, self.engine.default_schema
        return await anyio.to_thread.run_sync(lambda: analyze(sql, default_catalog=catalog, default_schema=schema))

    async def prepare(self, query: Query) -> str:
        """`statements.prepare` on a worker thread, once the caller may read every table of `query`.

        Raises:
            SqlRejected: a table does not exist, a column does not resolve, a cap.
        """

        def blocking() -> str:
            return prepare(query, self.engine.table_schemas(), dialect=self.engine.dialect)

        return await anyio.to_thread.run_sync(blocking)

    def table_name(self, name: str) -> str:
        return _parse_table_name(
            name, default_catalog=self.engine.default_catalog, default_schema=self.engine.default_schema
        )

    async def run(self, sql: str, *, max_rows: int, user: str) -> ResultSet:
        def blocking() -> ResultSet:
            return self.engine.run(sql, max_rows=max_rows, timeout_seconds=self.timeout_seconds, user=user)

        return await anyio.to_thread.run_sync(blocking)

    def close(self) -> None:
        """Close the engine (its worker processes, for DuckDB)."""
        self.engine.close()


@kit.resource
def sql_settings() -> SqlSettings:
    """The engine's settings, read once from `PORTCULLIS_SQL_*` when the server starts.

    Raises:
        ConfigurationError: a setting is invalid (named, with why).
    """
    try:
        return SqlSettings()
    except ValidationError as exc:
        problems = validation_problems(exc.errors(), env_prefix="PORTCULLIS_SQL_")
        raise ConfigurationError(f"invalid SQL engine settings: {problems}") from None


@kit.resource
def sql_service(settings: SqlSettings) -> Iterator[SqlService]:
    """The engine the settings name, opened when the server starts and closed when it stops.

    Raises:
        ConfigurationError, EngineUnavailable: as `SqlService.from_settings`.
    """
    service = SqlService.from_settings(settings)
    try:
        yield service
    finally:
        service.close()


async def _require_tables(caller: Caller, service: SqlService, tables: Sequence[str]) -> None:
    """Every table readable by this caller (one batch of decisions) and existing, else an error naming the first
    refused.

    The policy decides every name a statement reads, whether or not such a table exists (labels match names), and
    only then is existence checked: a forbidden table is refused the same way whether it exists or not, and
    "does not exist" is said only of a name the caller could read if it did.

    Raises:
        AccessDenied: the policy refuses a table (the reason and decision id of the first refused).
        SqlRejected: a table the caller may read does not exist.
    """
    datasets = [service.labels.dataset(table) for table in tables]
    verdicts = await caller.readable(datasets)
    for dataset, allowed in zip(datasets, verdicts, strict=True):
        if not allowed:
            message = not_readable(dataset.name)
            try:
                await caller.require(READ_ACTION, dataset)
            except AccessDenied as exc:
                raise AccessDenied(f"{message}: {exc}", reason=exc.reason, decision_id=exc.decision_id) from None
            raise AccessDenied(message, reason="deny")
    schemas = await anyio.to_thread.run_sync(service.engine.table_schemas)
    for table in tables:
        if not exists(table, schemas):
            raise SqlRejected(not_readable(table))


async def _readable_tables(caller: Caller, service: SqlService) -> list[tuple[str, str, str]]:
    schemas = await anyio.to_thread.run_sync(service.engine.table_schemas)
    rows = schema_rows(schemas)
    return await caller.filter_readable(rows, lambda row: service.labels.dataset(".".join(row)))


@kit.tool()
@guarded()
async def list_catalogs(caller: Caller, service: SqlService) -> list[str]:
    """The catalogs that hold at least one table you may read."""
    return sorted({catalog for catalog, _, _ in await _readable_tables(caller, service)})


@kit.tool()
@guarded()
async def list_schemas(caller: Caller, service: SqlService, catalog: str | None = None) -> list[str]:
    """The schemas (`catalog.schema`) that hold at least one table you may read, optionally of one catalog."""
    tables = await _readable_tables(caller, service)
    return sorted({f"{c}.{s}" for c, s, _ in tables if catalog is None or c == catalog})


@kit.tool()
@guarded()
async def list_tables(caller: Caller, service: SqlService, schema: str | None = None) -> list[dict[str, str]]:
    """The tables you may read, with their business group and sensitivity; `schema` is `schema` or
    `catalog.schema`."""
    wanted = tuple(schema.lower().split(".")) if schema else ()
    found = []
    for catalog, name_of_schema, table in await _readable_tables(caller, service):
        if wanted and wanted not in ((name_of_schema,), (catalog, name_of_schema)):
            continue
        dataset = service.labels.dataset(f"{catalog}.{name_of_schema}.{table}")
        found.append(
            {"table": dataset.name, "business_group": dataset.business_group, "sensitivity": dataset.sensitivity}
        )
    return found


@kit.tool()
@guarded()
async def describe_table(caller: Caller, service: SqlService, table: str) -> dict[str, Any]:
    """The columns and types of a table (`table`, `schema.table` or `catalog.schema.table`) and its labels."""
    name = service.table_name(table)
    await _require_tables(caller, service, [name])
    return _description(service, name)


def _description(service: SqlService, name: str) -> dict[str, Any]:
    catalog, schema, table = name.split(".", 2)
    columns = service.engine.table_schemas()[catalog][schema][table]
    dataset = service.labels.dataset(name)
    return {
        "table": name,
        "business_group": dataset.business_group,
        "sensitivity": dataset.sensitivity or "unlabelled (restricted)",
        "columns": [{"name": column, "type": data_type} for column, data_type in columns.items()],
    }


@kit.tool()
@guarded()
async def run_query(
    caller: Caller,
    service: SqlService,
    sql: str,
    max_rows: Annotated[int, Field(ge=1, le=100_000)] = DEFAULT_ROWS,
) -> str:
    """Run one read-only statement (Trino SQL: SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) and return the rows as a
    table. At most `max_rows` rows are returned (capped by the server); long queries are cancelled."""
    async with service.slot():
        return await _run_statement(caller, service, sql, max_rows)


async def _run_statement(caller: Caller, service: SqlService, sql: str, max_rows: int) -> str:
    statement = await service.analyze(sql)
    if isinstance(statement, ShowCatalogs):
        tables = await _readable_tables(caller, service)
        return render_rows(("catalog",), sorted({(c,) for c, _, _ in tables}))
    if isinstance(statement, ShowSchemas):
        tables = await _readable_tables(caller, service)
        return render_rows(("schema",), sorted({(s,) for c, s, _ in tables if c == statement.catalog}))
    if isinstance(statement, ShowTables):
        tables = await _readable_tables(caller, service)
        return render_rows(("table",), [(t,) for c, s, t in tables if (c, s) == (statement.catalog, statement.schema)])
    if isinstance(statement, Describe):
        await _require_tables(caller, service, [statement.table])
        columns = _description(service, statement.table)["columns"]
        return render_rows(("column", "type"), [(column["name"], column["type"]) for column in columns])
    if isinstance(statement, Explain):
        return await _explain(caller, service, statement)
    assert isinstance(statement, Query)
    await _require_tables(caller, service, statement.tables)  # access first, then columns: nothing leaks
    runnable = await service.prepare(statement)
    limit = min(max_rows, service.max_rows)
    result = await service.run(runnable, max_rows=limit, user=caller.user)
    return render_table(result, limit=limit, tables=statement.tables)


@kit.tool()
@guarded()
async def explain_query(caller: Caller, service: SqlService, sql: str) -> str:
    """The engine's plan for a read-only query (without running it), after the same checks as `run_query`."""
    async with service.slot():
        statement = await service.analyze(sql)
        if isinstance(statement, Query):
            statement = Explain(statement, analyze=False)
        if not isinstance(statement, Explain):
            raise SqlRejected("explain_query takes a query (SELECT or WITH)")
        return await _explain(caller, service, statement)


async def _explain(caller: Caller, service: SqlService, statement: Explain) -> str:
    await _require_tables(caller, service, statement.query.tables)
    runnable = await service.prepare(statement.query)
    prefix = "EXPLAIN ANALYZE " if statement.analyze else "EXPLAIN "
    result = await service.run(prefix + runnable, max_rows=1000, user=caller.user)
    return "\n".join(str(cell) for row in result.rows for cell in row[-1:])


@kit.tool()
@guarded()
async def get_revenue_metrics(
    caller: Caller,
    service: SqlService,
    start_date: datetime.date | None = None,
    end_date: datetime.date | None = None,
    region: str | None = None,
) -> list[dict[str, Any]]:
    """Daily ad revenue, impressions and clicks by region (ads data; for the ads-eng group)."""
    await _require_tables(caller, service, [REVENUE_TABLE])
    conditions = ["TRUE"]
    if start_date:
        conditions.append(f"day >= DATE '{start_date.isoformat()}'")
    if end_date:
        conditions.append(f"day <= DATE '{end_date.isoformat()}'")
    if region:
        if not region.isalnum():
            raise SqlRejected(f"not a region: {region!r}")
        conditions.append(f"region = '{region.lower()}'")
    sql = (
        "SELECT day, region, SUM(impressions) AS impressions, SUM(clicks) AS clicks, SUM(revenue_usd) AS revenue_usd "
        f"FROM {REVENUE_TABLE} WHERE {' AND '.join(conditions)} GROUP BY day, region ORDER BY day DESC, region"
    )
    async with service.slot():
        result = await service.run(sql, max_rows=service.max_rows, user=caller.user)
    return [{column: _plain(value) for column, value in zip(result.columns, row, strict=True)} for row in result.rows]


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    text = str(_plain(value)).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def render_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table of `rows` under `columns`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines.extend("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows)
    return "\n".join(lines)


def render_table(result: ResultSet, *, limit: int, tables: Sequence[str]) -> str:
    """The result as a Markdown table with a footer: how many rows, whether cut, which tables were read."""
    count = len(result.rows)
    if result.truncated:
        footer = f"First {count} rows (row limit {limit}; more rows exist: aggregate or filter)."
    else:
        footer = f"{count} row{'s' if count != 1 else ''}."
    read = f" Tables read: {', '.join(tables)}." if tables else ""
    return f"{render_rows(result.columns, result.rows)}\n\n{footer}{read} {result.elapsed_ms:.1f} ms."


def load_settings(**overrides: Any) -> KitSettings:
    """The server's kit settings from `KIT_SQL_*` (keyword arguments win; port 8301 unless told), accepting the
    gateway's Host header."""
    return KitSettings.behind_gateway(kit.name, default_port=DEFAULT_PORT, **overrides)
