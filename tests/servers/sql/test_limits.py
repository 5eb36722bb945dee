"""Statements that would stall the analysis are refused quickly, naming the cap; no analysis failure escapes."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servers.sql.errors import SqlRejected
from servers.sql.statements import Query, analyze, prepare
from tests.servers.sql.test_statements import TABLES

FIFTY_TABLES = ", ".join(f"regions r{i}" for i in range(50))


def nested_subqueries(depth: int) -> str:
    sql = "select 1 as a"
    for _ in range(depth):
        sql = f"select * from ({sql})"
    return sql


HOSTILE = [
    ("select " + ", ".join("*" for _ in range(200)) + " from " + FIFTY_TABLES, "more than 64 `*`"),
    (
        "select 1 from regions " + " ".join("join regions using (region)" for _ in range(1, 600)),
        "more than 64 joins",
    ),
    ("select " + "(" * 2000 + "1" + ")" * 2000, "more than 4000 tokens"),
    ("select " + "(" * 400 + "1" + ")" * 400, "deeper than 32"),
    (nested_subqueries(300), "deeper than 32"),
    ("select " + "not " * 1500 + "true", "nested too deeply"),
    ("select " + "case when true then " * 40 + "1" + " end" * 40, "deeper than 32"),
    ("select 1 from regions where " + " or ".join(f"region = 'r{i}'" for i in range(300)), "deeper than 256"),
    ("select 1 " + " " * 20_001, "longer than 20000 characters"),
    (
        "select 1 from " + ", ".join(f"regions r{i}" for i in range(65)),
        "more than 64 tables",
    ),
    # Each nested EXPLAIN analysed the rest again: 2,499 of them (20 KB) took seconds of CPU.
    ("EXPLAIN " * 2499 + "select 1", "EXPLAIN applies to a query"),
    ("explain explain select 1", "EXPLAIN applies to a query"),
    # The caps apply to the query a command swallows.
    ("explain select " + "(" * 400 + "1" + ")" * 400, "deeper than 32"),
    ("explain analyze select " + ", ".join("*" for _ in range(200)) + " from " + FIFTY_TABLES, "more than 64 `*`"),
]


@pytest.mark.parametrize(("sql", "cap"), HOSTILE, ids=[cap for _, cap in HOSTILE])
def test_a_statement_over_a_cap_is_refused_quickly_naming_the_cap(sql: str, cap: str) -> None:
    started = time.perf_counter()
    with pytest.raises(SqlRejected, match=cap.replace("*", r"\*")):
        analyze(sql, default_catalog="lake", default_schema="public")
    assert time.perf_counter() - started < 1.0  # generous: each is refused in milliseconds


def test_stars_that_multiply_through_ctes_are_refused_before_columns_are_resolved() -> None:
    doubling = "with a0 as (select * from regions)" + "".join(
        f", a{i} as (select *, * from a{i - 1})" for i in range(1, 20)
    )
    statement = analyze(doubling + " select * from a19", default_catalog="lake", default_schema="public")
    assert isinstance(statement, Query)
    started = time.perf_counter()
    with pytest.raises(SqlRejected, match="expand to more than 2000 columns"):
        prepare(statement, TABLES, dialect="duckdb")
    assert time.perf_counter() - started < 1.0


def test_a_star_over_a_few_tables_is_still_fine() -> None:
    statement = analyze("select * from regions a, ads.campaigns b", default_catalog="lake", default_schema="public")
    assert isinstance(statement, Query)
    assert "FROM lake.public.regions" in prepare(statement, TABLES, dialect="duckdb")


_SQL_ATOMS = st.sampled_from(
    [
        "select",
        "from",
        "where",
        "(",
        ")",
        "[",
        "]",
        "*",
        ",",
        "1",
        "'x'",
        "regions",
        "join",
        "on",
        "case",
        "when",
        "then",
        "end",
        "not",
        "-",
        "or",
        "with",
        "as",
        "x",
        ".",
        '"',
        "union",
        "order by",
        "->",
        "::",
        ";",
        "--",
        "/*",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SQL_ATOMS, max_size=60))
def test_any_text_is_analysed_or_refused_never_a_crash(atoms: list[str]) -> None:
    sql = " ".join(atoms)
    try:
        statement = analyze(sql, default_catalog="lake", default_schema="public")
        if isinstance(statement, Query):
            prepare(statement, TABLES, dialect="duckdb")
    except SqlRejected:
        pass
