"""What a statement asks for is decided by parsing it: read-only kinds only, every table it reads, resolved."""

from __future__ import annotations

import pytest

from servers.sql.errors import SqlRejected
from servers.sql.statements import (
    Describe,
    Explain,
    Query,
    ShowCatalogs,
    ShowSchemas,
    ShowTables,
    Statement,
    analyze,
    prepare,
)

TABLES = {
    "lake": {
        "ads": {
            "campaigns": {"campaign_id": "INTEGER", "advertiser": "VARCHAR"},
            "revenue_daily": {"day": "DATE", "region": "VARCHAR", "revenue_usd": "DECIMAL(12,2)"},
        },
        "finance": {"ledger": {"quarter": "VARCHAR", "amount_usd": "DECIMAL(14,2)"}},
        "public": {"regions": {"region": "VARCHAR", "name": "VARCHAR"}},
    }
}


def run(sql: str) -> Statement:
    return analyze(sql, default_catalog="lake", default_schema="public")


def run_prepared(sql: str) -> str | Statement:
    """Both steps, as the server takes them once the tables are decided."""
    statement = run(sql)
    query = statement.query if isinstance(statement, Explain) else statement
    return prepare(query, TABLES, dialect="duckdb") if isinstance(query, Query) else statement


def tables_of(sql: str) -> tuple[str, ...]:
    statement = run(sql)
    assert isinstance(statement, Query)
    return statement.tables


def test_unqualified_and_schema_qualified_tables_resolve_to_the_full_name() -> None:
    assert tables_of("select name from regions") == ("lake.public.regions",)
    assert tables_of("select * from ads.campaigns") == ("lake.ads.campaigns",)
    assert tables_of("select * from LAKE.Ads.CAMPAIGNS") == ("lake.ads.campaigns",)


def test_tables_inside_ctes_subqueries_joins_and_set_operations_are_all_found() -> None:
    sql = """
        WITH spend AS (SELECT advertiser FROM ads.campaigns)
        SELECT r.name, (SELECT max(quarter) FROM finance.ledger) AS q
        FROM regions AS r JOIN spend ON true
        WHERE r.region IN (SELECT region FROM ads.revenue_daily)
        UNION ALL SELECT name, name FROM regions
    """
    assert tables_of(sql) == (
        "lake.ads.campaigns",
        "lake.ads.revenue_daily",
        "lake.finance.ledger",
        "lake.public.regions",
    )


def test_a_cte_named_like_a_table_is_not_that_table() -> None:
    assert tables_of("WITH regions AS (SELECT 1 AS a) SELECT a FROM regions") == ()


def test_the_query_that_runs_names_exactly_the_tables_decided() -> None:
    assert run_prepared("select region, count(*) from ads.revenue_daily group by 1") == (
        "SELECT region, COUNT(*) FROM lake.ads.revenue_daily AS revenue_daily GROUP BY 1"
    )


def test_trino_functions_are_translated_for_duckdb() -> None:
    translated = run_prepared("select approx_distinct(region), date_add('day', 1, max(day)) from ads.revenue_daily")
    assert isinstance(translated, str)
    assert "APPROX_COUNT_DISTINCT(region)" in translated
    assert "INTERVAL 1 DAY" in translated


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("insert into regions values ('x', 'y')", "only read-only statements are allowed"),
        ("delete from regions", "only read-only statements are allowed"),
        ("create table t as select 1 as a", "only read-only statements are allowed"),
        ("set session query_max_run_time = '1h'", "only read-only statements are allowed"),
        ("call system.sync_partition_metadata('a', 'b', 'ADD')", "only read-only statements are allowed"),
        ("select 1; drop table regions", "send one statement at a time"),
        ("select * from read_csv('/etc/passwd')", "table functions are not allowed"),
        ("select * from table(query('select 1'))", "table functions are not allowed"),
        ("select * from nowhere", "table lake.public.nowhere does not exist or you may not read it"),
        (
            "select * from lake.information_schema.tables",
            "table lake.information_schema.tables does not exist or you may not read it",
        ),
        ("select nope from regions", "Column 'nope' could not be resolved"),
        ("selec 1", "syntax error"),
        ("", "the statement is empty"),
        ("explain insert into regions values ('a', 'b')", "only read-only statements are allowed"),
        ("explain (type distributed) select 1", "EXPLAIN options are not supported"),
        ("show functions", "supported SHOW statements"),
        ("describe 'regions'", "expected a name"),
    ],
)
def test_statements_other_than_read_only_ones_are_refused_with_a_reason(sql: str, message: str) -> None:
    with pytest.raises(SqlRejected, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_prepared(sql)


def test_show_describe_and_explain_are_classified() -> None:
    assert run("SHOW CATALOGS") == ShowCatalogs()
    assert run("show schemas") == ShowSchemas("lake")
    assert run("show tables from ads") == ShowTables("lake", "ads")
    assert run("show tables") == ShowTables("lake", "public")
    assert run("describe ads.campaigns") == Describe("lake.ads.campaigns")
    assert run('show columns from "lake"."finance"."ledger";') == Describe("lake.finance.ledger")
    explained = run("EXPLAIN ANALYZE select * from finance.ledger")
    assert isinstance(explained, Explain) and explained.analyze
    assert explained.query.tables == ("lake.finance.ledger",)


def test_an_oversized_statement_is_refused_before_parsing() -> None:
    with pytest.raises(SqlRejected, match="longer than"):
        run("select 1 " + " " * 20_001)
