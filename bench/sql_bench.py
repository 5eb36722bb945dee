"""What the SQL server's governance costs per query, against running the same query on the engine alone.

    python -m bench.sql_bench [--rounds 8] [--per-round 200]
    python -m bench.sql_bench --worst   # hostile statements: how long each takes to be analysed or refused

In-process, on the sample data set (DuckDB, built into a temporary folder). For each query shape, interleaved
round by round so every ratio compares samples taken at the same moments of a noisy machine:
- `engine`: `DuckDBEngine.run` of the already-translated query (the baseline: what a server without any
  governance would pay);
- `analyze`: `statements.analyze` (tokenize, parse the Trino dialect, refuse non-read-only kinds, resolve every
  table, validate columns against the schemas, translate to DuckDB);
- `governed`: analyze + labels of the tables + engine run: the server's per-query path except the policy's
  batch decision, which the kit caches (measured in bench.kit_bench: a warm decision is ~6 us).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from servers.sql import local
from servers.sql.engines import DuckDBEngine
from servers.sql.errors import SqlRejected
from servers.sql.labels import Labels
from servers.sql.statements import Query, analyze, prepare

QUERIES = {
    "point": "select name from regions where region = 'emea'",
    "aggregate": "select region, sum(revenue_usd) as revenue from ads.revenue_daily group by 1 order by 1",
    "join+cte": (
        "with spend as (select campaign_id, sum(revenue_usd) as revenue from ads.revenue_daily group by 1) "
        "select c.advertiser, s.revenue from ads.campaigns c join spend s on s.campaign_id = c.campaign_id "
        "where c.start_date >= date '2026-08-01' order by 2 desc"
    ),
    "trino functions": (
        "select approx_distinct(region) as regions, date_add('day', 1, max(day)) as next_day "
        "from ads.revenue_daily where campaign_id in (select campaign_id from ads.campaigns)"
    ),
}


# The review's hostile statements, and the slowest statements found that pass every cap (`servers/sql/limits.py`).
HOSTILE = {
    "200 * over 50 tables (1.4 KB)": "select "
    + ", ".join("*" for _ in range(200))
    + " from "
    + ", ".join(f"regions r{i}" for i in range(50)),
    "2,000 nested parentheses": "select " + "(" * 2000 + "1" + ")" * 2000,
    "1,500 NOT": "select " + "not " * 1500 + "true",
    "OR chain of 1,000": "select 1 from regions where " + " or ".join(f"region = 'r{i}'" for i in range(1000)),
    "passes: 1,500 columns over 63 sources": "select "
    + ", ".join("week" for _ in range(1500))
    + " from calendar c0 "
    + " ".join(f"join regions r{i} on true" for i in range(1, 63)),
    "passes: 10 * over 64 tables": "select "
    + ", ".join("*" for _ in range(10))
    + " from "
    + ", ".join(f"calendar c{i}" for i in range(64)),
}


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sql_bench")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--worst", action="store_true", help="time the hostile statements instead")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sql-bench-") as folder:
        state = Path(folder)
        local.setup(state)
        engine = DuckDBEngine(local.database_path(state))
        labels = Labels.load(Path(local.__file__).with_name("server.json"))
        schemas = engine.table_schemas()

        def analyzed(sql: str) -> str:
            statement = analyze(sql, default_catalog="lake", default_schema="public")
            assert isinstance(statement, Query)
            return prepare(statement, schemas, dialect="duckdb")

        def governed(sql: str) -> None:
            statement = analyze(sql, default_catalog="lake", default_schema="public")
            assert isinstance(statement, Query)
            [labels.dataset(table) for table in statement.tables]
            engine.run(prepare(statement, schemas, dialect="duckdb"), max_rows=100, timeout_seconds=30, user="bench")

        if args.worst:
            for name, sql in HOSTILE.items():
                times = []
                for _ in range(5):
                    started = time.perf_counter()
                    try:
                        analyzed(sql)
                        outcome = "analysed"
                    except SqlRejected as exc:
                        outcome = f"refused: {str(exc)[:60]}"
                    times.append(time.perf_counter() - started)
                print(f"{name:<40} {len(sql):>6} chars {max(times) * 1000:>8.1f} ms (max of 5)  {outcome}")
            engine.close()
            return 0

        print(f"{'query':<16} {'engine p50':>11} {'analyze p50':>12} {'governed p50':>13} {'ratio':>7}")
        for name, sql in QUERIES.items():
            translated = analyzed(sql)
            samples: dict[str, list[float]] = {"engine": [], "analyze": [], "governed": []}
            cases: dict[str, Callable[[], object]] = {
                "engine": partial(engine.run, translated, max_rows=100, timeout_seconds=30, user="bench"),
                "analyze": partial(analyzed, sql),
                "governed": partial(governed, sql),
            }
            for case in cases.values():  # warm caches and the allocator
                for _ in range(20):
                    case()
            for round_number in range(args.rounds):
                order = list(cases)[round_number % 3 :] + list(cases)[: round_number % 3]
                for case_name in order:
                    samples[case_name].extend(_timed(cases[case_name]) for _ in range(args.per_round))
            p50 = {case: statistics.median(values) for case, values in samples.items()}
            print(
                f"{name:<16} {p50['engine']:>9.0f}us {p50['analyze']:>10.0f}us {p50['governed']:>11.0f}us "
                f"{p50['governed'] / p50['engine']:>6.2f}x"
            )
        engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
