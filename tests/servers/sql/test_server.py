"""The SQL server's tools through the real MCP SDK client, the real policies and the real local engine."""

from __future__ import annotations

from pathlib import Path

import mcp_types as types
import pytest

from server_kit.testing import KitHarness
from servers.sql.errors import EngineUnavailable
from servers.sql.server import SqlService, SqlSettings


def alice(harness: KitHarness) -> str:
    return harness.token("alice", groups=["eng", "ads-eng"], business_groups=["ads"])


def bob(harness: KitHarness) -> str:
    return harness.token("bob", groups=["eng", "platform"], business_groups=["search"])


def text(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


def result_of(result: types.CallToolResult) -> object:
    assert not result.is_error, text(result)
    return (result.structured_content or {}).get("result")


def test_tables_are_listed_only_where_the_caller_may_read_them(harness: KitHarness) -> None:
    ads = result_of(harness.call(alice(harness), "list_tables"))
    search = result_of(harness.call(bob(harness), "list_tables"))
    assert [row["table"] for row in ads] == [  # type: ignore[attr-defined]
        "lake.ads.campaigns",
        "lake.ads.revenue_daily",
        "lake.public.calendar",
        "lake.public.regions",
    ]
    assert [row["table"] for row in search] == [  # type: ignore[attr-defined]
        "lake.public.calendar",
        "lake.public.regions",
        "lake.search.queries_daily",
    ]
    assert result_of(harness.call(bob(harness), "list_schemas")) == [
        "lake.public",
        "lake.search",
    ]
    assert result_of(harness.call(bob(harness), "list_catalogs")) == ["lake"]


def test_a_query_returns_a_readable_table_with_a_footer(harness: KitHarness) -> None:
    result = harness.call(
        alice(harness),
        "run_query",
        {"sql": "select region, count(*) as days from ads.revenue_daily where campaign_id = 1 group by 1 order by 1"},
    )
    assert not result.is_error, text(result)
    lines = text(result).splitlines()
    assert lines[:5] == ["| region | days |", "|---|---|", "| amer | 112 |", "| apac | 112 |", "| emea | 112 |"]
    assert "3 rows. Tables read: lake.ads.revenue_daily." in lines[-1]


def test_a_table_read_inside_a_subquery_is_gated_like_any_other(harness: KitHarness) -> None:
    sql = "select name from regions where region in (select region from ads.revenue_daily)"
    allowed = harness.call(alice(harness), "run_query", {"sql": sql})
    denied = harness.call(bob(harness), "run_query", {"sql": sql})
    assert not allowed.is_error, text(allowed)
    assert denied.is_error
    assert "lake.ads.revenue_daily" in text(denied) and "business_group_mismatch" in text(denied)


def test_a_cte_hiding_a_restricted_table_is_still_denied(harness: KitHarness) -> None:
    sql = "with x as (select * from finance.ledger) select count(*) from x"
    denied = harness.call(alice(harness), "run_query", {"sql": sql})
    assert denied.is_error and "lake.finance.ledger" in text(denied)
    carol = harness.call(
        harness.token("carol", groups=["finance-eng"], business_groups=["finance"]), "run_query", {"sql": sql}
    )
    assert not carol.is_error and "| 6 |" in text(carol)


def test_rows_are_cut_at_the_row_limit_and_the_footer_says_so(harness: KitHarness) -> None:
    result = harness.call(bob(harness), "run_query", {"sql": "select * from calendar", "max_rows": 5})
    assert not result.is_error, text(result)
    body = [line for line in text(result).splitlines() if line.startswith("| 2026")]
    assert len(body) == 5
    assert "First 5 rows (row limit 5; more rows exist" in text(result)


def test_the_server_caps_the_row_limit_a_caller_asks_for(harness: KitHarness) -> None:
    result = harness.call(bob(harness), "run_query", {"sql": "select * from search.queries_daily", "max_rows": 100_000})
    assert not result.is_error, text(result)
    assert "First 100 rows (row limit 100" in text(result)


def test_a_long_query_is_cancelled_at_the_time_limit(harness: KitHarness) -> None:
    sql = "select count(*) from calendar a, calendar b, calendar c, calendar d, calendar e"
    result = harness.call(bob(harness), "run_query", {"sql": sql})
    assert result.is_error
    assert "ran longer than 2 s and was cancelled" in text(result)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("drop table public.regions", "only read-only statements are allowed"),
        ("select * from read_parquet('/etc/passwd')", "table functions are not allowed"),
        ("select frobnicate from regions", "Column 'frobnicate' could not be resolved"),
        ("select * from search.nothing", "table lake.search.nothing does not exist or you may not read it"),
        ("select cast('x' as integer) from regions", "the engine refused the query: Conversion Error"),
    ],
)
def test_bad_sql_is_a_clear_tool_error(harness: KitHarness, sql: str, message: str) -> None:
    result = harness.call(bob(harness), "run_query", {"sql": sql})
    assert result.is_error
    assert message in text(result)
    assert "Traceback" not in text(result)


def test_show_and_describe_go_through_the_same_gating(harness: KitHarness) -> None:
    token = bob(harness)
    assert "| queries_daily |" in text(harness.call(token, "run_query", {"sql": "show tables from search"}))
    assert "| campaigns |" not in text(harness.call(token, "run_query", {"sql": "show tables from ads"}))
    described = harness.call(token, "run_query", {"sql": "describe ads.campaigns"})
    assert described.is_error and "business_group_mismatch" in text(described)
    described = harness.call(alice(harness), "describe_table", {"table": "ads.campaigns"})
    assert not described.is_error, text(described)
    columns = described.structured_content or {}
    assert columns["business_group"] == "ads" and columns["sensitivity"] == "confidential"
    assert columns["columns"][0] == {"name": "campaign_id", "type": "INTEGER"}


def test_explain_shows_a_plan_without_running_the_query(harness: KitHarness) -> None:
    result = harness.call(
        alice(harness),
        "explain_query",
        {"sql": "select region, sum(revenue_usd) from ads.revenue_daily group by 1"},
    )
    assert not result.is_error, text(result)
    assert "Projection" in text(result) and "~1,365 rows" in text(result)
    denied = harness.call(bob(harness), "explain_query", {"sql": "select * from ads.campaigns"})
    assert denied.is_error and "business_group_mismatch" in text(denied)


def test_revenue_metrics_are_for_the_ads_eng_group_only(harness: KitHarness) -> None:
    rows = result_of(
        harness.call(alice(harness), "get_revenue_metrics", {"start_date": "2026-11-20", "region": "emea"})
    )
    assert isinstance(rows, list) and [row["day"] for row in rows] == ["2026-11-20"]
    assert rows[0]["region"] == "emea" and rows[0]["revenue_usd"] > 0
    ads_outsider = harness.call(harness.token("erin", groups=["eng"], business_groups=["ads"]), "get_revenue_metrics")
    assert ads_outsider.is_error and "group_required" in text(ads_outsider)
    assert "get_revenue_metrics" not in harness.tool_names(bob(harness))


def test_a_missing_local_database_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="run `python -m servers.sql.local setup`"):
        SqlService.from_settings(SqlSettings(database=tmp_path / "lake.duckdb"))


def test_the_engine_being_unavailable_is_a_clear_tool_error(harness: KitHarness, sql_service: SqlService) -> None:
    class Down:
        dialect = "duckdb"
        default_catalog = "lake"
        default_schema = "public"

        def table_schemas(self) -> object:
            raise EngineUnavailable("Trino at trino.internal:443 is unreachable: connection refused")

        def run(self, *args: object, **kwargs: object) -> object:
            raise AssertionError("never reached")

    down = harness.with_resources(SqlService(Down(), sql_service.labels, 10, 1.0))  # type: ignore[arg-type]
    result = down.call(bob(down), "run_query", {"sql": "select 1"})
    assert result.is_error
    assert text(result).endswith(": Trino at trino.internal:443 is unreachable: connection refused")
