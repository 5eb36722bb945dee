"""The SQL server against the review's attacks: what a caller may not read stays unseen, and one statement cannot
stall the server for everyone (the real server in-process, the real policies, the real DuckDB sample data)."""

from __future__ import annotations

import threading
import time

import anyio
import mcp_types as types
import pytest

from server_kit.testing import KitHarness
from servers.sql.server import SqlService
from tests.servers.sql.test_server import alice, bob, text

# Passes every cap (1,500 unqualified columns over 63 sources): its analysis takes a few hundred ms, its run none.
SLOW_TO_ANALYSE = (
    "select "
    + ", ".join("week" for _ in range(1500))
    + " from calendar c0 "
    + " ".join(f"join regions r{i} on true" for i in range(1, 63))
    + " where false"
)


def refusal(harness: KitHarness, sql: str) -> str:
    result = harness.call(bob(harness), "run_query", {"sql": sql})
    assert result.is_error
    assert "Traceback" not in text(result)
    return text(result)


def without_decision_id(message: str) -> str:
    return message.split("; decision")[0]


def test_a_made_up_column_of_a_forbidden_table_is_refused_like_a_real_one(harness: KitHarness) -> None:
    real = refusal(harness, "select advertiser from ads.campaigns")
    made_up = refusal(harness, "select no_such_column from ads.campaigns")
    assert "does not exist or you may not read it" in real
    assert without_decision_id(made_up) == without_decision_id(real)
    assert "could not be resolved" not in made_up


def test_an_unknown_table_is_refused_like_a_forbidden_one(harness: KitHarness) -> None:
    forbidden = refusal(harness, "select * from ads.campaigns")
    unknown = refusal(harness, "select * from ads.no_such_table")
    assert without_decision_id(unknown) == without_decision_id(forbidden).replace("campaigns", "no_such_table")
    described_forbidden = harness.call(bob(harness), "describe_table", {"table": "ads.campaigns"})
    described_unknown = harness.call(bob(harness), "describe_table", {"table": "ads.no_such_table"})
    assert described_forbidden.is_error and described_unknown.is_error
    assert without_decision_id(text(described_unknown)) == without_decision_id(text(described_forbidden)).replace(
        "campaigns", "no_such_table"
    )


def test_listing_an_unknown_schema_looks_like_listing_a_forbidden_one(harness: KitHarness) -> None:
    token = bob(harness)
    for tool, forbidden, unknown in [
        ("list_tables", {"schema": "ads"}, {"schema": "no_such_schema"}),
        ("list_schemas", {"catalog": "nowhere"}, {"catalog": "no_such_catalog"}),
    ]:
        assert harness.call(token, tool, forbidden).structured_content == {"result": []}
        assert harness.call(token, tool, unknown).structured_content == {"result": []}
    for forbidden_sql, unknown_sql in [
        ("show tables from ads", "show tables from no_such_schema"),
        ("show schemas from nowhere", "show schemas from no_such_catalog"),
    ]:
        shown = [harness.call(token, "run_query", {"sql": sql}) for sql in (forbidden_sql, unknown_sql)]
        assert not shown[0].is_error and not shown[1].is_error
        assert text(shown[0]) == text(shown[1])


@pytest.mark.parametrize(
    "sql",
    [
        "select pg_catalog.pg_get_constraintdef(oid) from (select 1 as oid) as t",
        "select current_setting('temp_directory')",
        "select \"CURRENT_SETTING\"('temp_directory')",
        "select region from regions order by current_setting('memory_limit')",
    ],
)
def test_catalog_and_settings_functions_never_reach_the_engine(harness: KitHarness, sql: str) -> None:
    message = refusal(harness, sql)
    assert "not allowed" in message
    assert "/" not in message.split(":", 1)[-1].replace("/*", "")  # no server path in the answer


def test_a_hostile_statement_is_refused_quickly_with_the_cap_it_broke(harness: KitHarness) -> None:
    stars = "select " + ", ".join("*" for _ in range(200)) + " from " + ", ".join(f"regions r{i}" for i in range(50))
    nested = "select " + "(" * 2000 + "1" + ")" * 2000
    subqueries = "select 1 as a"
    for _ in range(300):
        subqueries = f"select * from ({subqueries})"
    for sql, cap in [(stars, "`*`"), (nested, "tokens"), (subqueries, "deeper than 32")]:
        started = time.perf_counter()
        assert cap in refusal(harness, sql)
        assert time.perf_counter() - started < 5.0  # generous; the refusal itself takes milliseconds


def test_select_1_from_another_caller_completes_while_a_statement_is_in_analysis(harness: KitHarness) -> None:
    # While one caller's statements are analysed, another's SELECT 1 keeps completing on the same event loop. Were
    # the analysis on the loop, none could complete until each ended (at most one slips in before each end).
    async def main() -> tuple[types.CallToolResult, list[types.CallToolResult]]:
        quick: list[types.CallToolResult] = []
        async with harness.client(bob(harness)) as slow_client, harness.client(alice(harness)) as quick_client:
            await quick_client.call_tool("run_query", {"sql": "select 1"})  # warm: first-call costs out of the way
            pending = True

            async def slow() -> types.CallToolResult:
                nonlocal pending
                try:  # three in a row: a window long enough for a busy machine to show the concurrency
                    for _ in range(2):
                        await slow_client.call_tool("run_query", {"sql": SLOW_TO_ANALYSE})
                    return await slow_client.call_tool("run_query", {"sql": SLOW_TO_ANALYSE})
                finally:
                    pending = False

            async with anyio.create_task_group() as group:
                slow_result: list[types.CallToolResult] = []

                async def keep_slow() -> None:
                    slow_result.append(await slow())

                group.start_soon(keep_slow)
                await anyio.sleep(0.02)
                while pending:
                    result = await quick_client.call_tool("run_query", {"sql": "select 1"})
                    if pending:
                        quick.append(result)
        return slow_result[0], quick

    slow_result, quick = anyio.run(main)
    assert not slow_result.is_error, text(slow_result)
    assert all(not result.is_error for result in quick)
    # With the analysis on the loop, at most one slips in before each of the three statements' analysis ends.
    assert len(quick) >= 4, f"only {len(quick)} SELECT 1 completed while the statements were analysed"


def test_a_caller_past_the_concurrency_limit_is_told_busy_at_once(harness: KitHarness, sql_service: SqlService) -> None:
    service = SqlService(sql_service.engine, sql_service.labels, 10, 2.0, max_concurrent_queries=1)
    one_slot = harness.with_resources(service)
    held, release = threading.Event(), threading.Event()

    def hold_the_only_slot() -> None:  # another caller's statement, held for as long as the test needs
        async def run() -> None:
            async with service.slot():
                held.set()
                await anyio.to_thread.run_sync(release.wait)

        anyio.run(run)

    holder = threading.Thread(target=hold_the_only_slot)
    holder.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        result = one_slot.call(bob(one_slot), "run_query", {"sql": "select 1"})
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join()
    busy = text(result) if result.is_error else None
    assert busy is not None and "the SQL server is busy" in busy and "try again" in busy
    assert waited < 10  # told at once, never queued behind the held slot
    assert not one_slot.call(bob(one_slot), "run_query", {"sql": "select 1"}).is_error  # the slot is free again
    assert not one_slot.call(bob(one_slot), "run_query", {"sql": "select 1"}).is_error


def test_a_query_that_builds_a_huge_value_fails_within_the_limits_and_the_server_goes_on(
    harness: KitHarness,
) -> None:
    started = time.perf_counter()
    message = refusal(harness, "select count(*) from unnest(sequence(1, 200000000))")
    assert "Out of Memory" in message or "ran longer than" in message
    assert time.perf_counter() - started < 10.0  # the time limit is 2 s; a stuck engine process is killed
    padded = refusal(harness, "select length(rpad('x', 1000000000, 'y'))")
    assert "Out of Memory" in padded or "ran longer than" in padded
    assert time.perf_counter() - started < 20.0
    assert not harness.call(bob(harness), "run_query", {"sql": "select 1"}).is_error


def test_the_engine_runs_with_its_limits_and_a_query_cannot_raise_them(sql_service: SqlService) -> None:
    from servers.sql.errors import QueryFailed

    engine = sql_service.engine
    with pytest.raises(QueryFailed, match="locked"):
        engine.run("SET memory_limit = '100GB'", max_rows=1, timeout_seconds=2, user="test")
    with pytest.raises(QueryFailed, match="locked"):
        engine.run("RESET threads", max_rows=1, timeout_seconds=2, user="test")
    limits = engine.run(
        "select current_setting('memory_limit'), current_setting('threads')", max_rows=1, timeout_seconds=2, user="t"
    )
    assert limits.rows[0] == ("953.6 MiB", 2)  # the defaults, 1GB (DuckDB shows it in MiB) and 2 threads
