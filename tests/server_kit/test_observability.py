"""JSON log lines: the call's fields on every line written during a tool call, tokens redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import anyio
import pytest
from starlette.applications import Starlette

from server_kit import Kit, public
from server_kit.observability import JsonFormatter, bound_log_fields
from tests.server_kit.support import Issuer, build_app, mcp_client, started


class FormattedLines(logging.Handler):
    """Formats each record as it is emitted (inside the caller's context), as a stream handler does."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[FormattedLines]:
    handler = FormattedLines()
    logger = logging.getLogger("tests.server_kit.tool")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_a_log_line_is_one_json_object_with_tokens_redacted(issuer: Issuer) -> None:
    token = issuer.token()
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "got %s and Bearer %s", (token, "opaque-secret-1234"), None
    )
    with bound_log_fields(tool="echo", user="alice", empty=""):
        line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["tool"] == "echo" and entry["user"] == "alice" and "empty" not in entry
    assert token not in line and "opaque-secret-1234" not in line
    assert entry["message"] == "got [redacted-jwt] and Bearer [redacted]"


def test_a_tool_authors_own_log_lines_carry_the_call_fields(
    issuer: Issuer, authzen: Starlette, lines: FormattedLines
) -> None:
    kit = Kit("demo")

    @kit.tool()
    @public(reason="Echoes its input; reads no data.")
    async def echo(message: str) -> str:
        logging.getLogger("tests.server_kit.tool").info("echoing %d characters", len(message))
        return message

    app = build_app(kit, issuer, authzen)

    async def run() -> None:
        async with started(app), mcp_client(app, issuer.token("bob"), **{"x-portcullis-decision-id": "edge-9"}) as c:
            await c.call_tool("echo", {"message": "hello"})

    anyio.run(run)
    (line,) = lines.lines
    assert line["message"] == "echoing 5 characters" and line["logger"] == "tests.server_kit.tool"
    assert line["server"] == "demo" and line["tool"] == "echo" and line["user"] == "bob"
    assert line["edge_decision_id"] == "edge-9" and line["client_id"] == "claude-desktop"
