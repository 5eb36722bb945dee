"""`UsageIndex`: tool calls per server from a decision log, read incrementally."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from registry.usage import ToolUsage, UsageIndex

TODAY = dt.date(2025, 11, 24)


def line(
    user: str = "alice",
    tool: str = "echo",
    result: str = "allow",
    *,
    server: str = "demo",
    layer: str = "edge",
    action: str = "call",
    kind: str = "tool",
    day: dt.date = TODAY,
) -> str:
    record = {
        "decision_id": "abc-1", "time": f"{day.isoformat()}T10:00:00.000000+00:00", "layer": layer,
        "actor": {"id": user, "client": "vscode", "groups": []}, "action": action,
        "resource": {"type": kind, "server": server, "name": tool}, "result": result, "reason": "allowed",
    }  # fmt: skip
    return json.dumps(record, separators=(",", ":")) + "\n"


def index(path: Path, today: dt.date = TODAY) -> UsageIndex:
    return UsageIndex(path, today=lambda: today)


def test_calls_allowed_denied_and_distinct_users_are_counted_per_tool(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_text(line("alice") + line("bob") + line("alice") + line("bob", "get_revenue_metrics", "deny")
                   + line("carol", "quarterly_close", server="finance-reports"))  # fmt: skip
    usage = index(log).server("demo")
    assert usage.tools == {
        "echo": ToolUsage("echo", calls=3, allowed=3, denied=0, users=2),
        "get_revenue_metrics": ToolUsage("get_revenue_metrics", calls=1, allowed=0, denied=1, users=1),
    }
    assert (usage.calls, usage.allowed, usage.denied, usage.users) == (4, 3, 1, 2)
    assert usage.tool("whoami") == ToolUsage("whoami")
    assert index(log).server("finance-reports").users == 1


def test_only_tool_calls_at_the_gateway_count(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_text(
        line(layer="server")  # the same call, decided again inside the server
        + line(action="connect", kind="server")
        + line(kind="dataset", action="read")
        + "not json at all\n"
        + '{"action": "call", "layer": "edge", "resource": "nope"}\n'
        + line("bob")
    )
    usage = index(log).server("demo")
    assert usage.calls == 1 and usage.users == 1


def test_a_shadow_mode_would_deny_counts_as_an_allowed_call(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_text(line(result="would_deny"))
    assert index(log).server("demo").tool("echo") == ToolUsage("echo", calls=1, allowed=1, denied=0, users=1)


def test_only_the_last_thirty_days_count(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_text(line(day=TODAY - dt.timedelta(days=29)) + line("bob", day=TODAY - dt.timedelta(days=30)))
    assert index(log).server("demo").calls == 1
    later = index(log, TODAY + dt.timedelta(days=1))
    assert later.server("demo").calls == 0


def test_appended_lines_are_read_without_rereading_the_file(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_text(line("alice"))
    usage = index(log)
    assert usage.server("demo").calls == 1
    with log.open("a") as file:
        file.write(line("bob") + line("carol")[:40])  # the last line is still being written
    assert usage.server("demo").calls == 2
    with log.open("a") as file:
        file.write(line("carol")[40:])
    after = usage.server("demo")
    assert after.calls == 3 and after.users == 3


def test_a_truncated_or_replaced_log_is_read_again_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_text(line("alice") + line("bob") + line("carol"))
    usage = index(log)
    assert usage.server("demo").calls == 3
    log.write_text(line("dave"))  # truncated in place
    assert usage.server("demo").calls == 1
    rotated = tmp_path / "decisions.new"
    rotated.write_text(line("erin") + line("frank") + line("gina") + line("hal"))
    os.replace(rotated, log)  # replaced by a new file (a new inode)
    assert usage.server("demo").users == 4


def test_a_missing_log_means_no_usage(tmp_path: Path) -> None:
    usage = index(tmp_path / "absent.jsonl").server("demo")
    assert usage.calls == 0 and usage.tools == {} and usage.window_days == 30
