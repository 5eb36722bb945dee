"""The tickets tools through the real MCP SDK client (KitHarness: real tokens, the real policies) against the real
local Redmine: file, read, comment, move and find a ticket; unknown tickets, forbidden moves, a tracker that is
down, refused credentials and a caller the policy denies all end in a clear one-line tool error.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client.context import ClientRequestContext
from pydantic import SecretStr

from portcullis.testing import free_port
from server_kit.testing import KitHarness
from servers.tickets.errors import BackendError
from servers.tickets.settings import TicketsSettings
from tests.conftest import Backend

ALICE_GROUPS = ["eng", "ads-eng"]
ALICE_BUSINESS_GROUPS = ["ads"]


class Answer:
    """An elicitation callback that records each question and answers as told."""

    def __init__(self, action: str = "accept", content: dict[str, Any] | None = None):
        self.action = action
        self.content = {"confirm": True} if content is None and action == "accept" else content
        self.messages: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.messages.append(params.message)
        return types.ElicitResult(action=self.action, content=self.content)  # type: ignore[arg-type]


def text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def error(result: types.CallToolResult) -> str:
    """The tool error's message, without the SDK's "Error executing tool X: " prefix."""
    assert result.is_error, text(result)
    return re.sub(r"^Error executing tool \w+: ", "", text(result))


def data(result: types.CallToolResult) -> Any:
    assert not result.is_error, text(result)
    if isinstance(result.structured_content, dict) and set(result.structured_content) == {"result"}:
        return result.structured_content["result"]
    return result.structured_content if result.structured_content is not None else json.loads(text(result))


def alice(harness: KitHarness) -> str:
    return harness.token("alice", groups=ALICE_GROUPS, business_groups=ALICE_BUSINESS_GROUPS)


def unique_word() -> str:
    return f"zq{uuid.uuid4().hex[:10]}"


def create(harness: KitHarness, summary: str, **extra: Any) -> dict[str, Any]:
    answer = Answer()
    result = harness.call(alice(harness), "create", {"project": "ads", "summary": summary, **extra}, elicitation=answer)
    assert len(answer.messages) == 1 and "create" in answer.messages[0]
    ticket: dict[str, Any] = data(result)
    return ticket


def test_a_ticket_is_filed_read_commented_moved_and_found(harness: KitHarness, redmine: Backend) -> None:
    word = unique_word()
    created = create(harness, f"Pacing stalls {word}", description="Budget pacing drops to zero.", type="Bug")
    assert created["key"].startswith("ads-") and created["project"] == "ads"
    assert created["status"] == "New" and created["type"] == "Bug" and created["reporter"] == "Portcullis Bot"
    assert "Budget pacing drops to zero." in created["description"]
    assert "filed through Portcullis by alice" in created["description"]
    assert created["url"] == f"http://127.0.0.1:{redmine.port}/issues/{created['key'].split('-')[-1]}"

    key = created["key"]
    number = key.rsplit("-", 1)[1]
    for spelling in (key, f"#{number}", key.upper()):
        fetched = data(harness.call(alice(harness), "get", {"key": spelling}))
        assert fetched["key"] == key and fetched["summary"] == f"Pacing stalls {word}"

    said = data(harness.call(alice(harness), "comment", {"key": key, "body": "Looking into it."}, elicitation=Answer()))
    assert said["body"].startswith("Looking into it.") and "written through Portcullis by alice" in said["body"]
    moved = data(
        harness.call(alice(harness), "transition", {"key": key, "to_status": "in progress"}, elicitation=Answer())
    )
    assert moved["status"] == "In Progress"
    assert [comment["body"] for comment in moved["comments"]] == [said["body"]]

    found = data(harness.call(alice(harness), "search", {"query": word}))
    assert [(hit["key"], hit["status"]) for hit in found] == [(key, "In Progress")]
    assert data(harness.call(alice(harness), "search", {"query": word, "project": "platform"})) == []
    assert data(harness.call(alice(harness), "search", {"query": word, "status": "closed"})) == []
    assert [hit["key"] for hit in data(harness.call(alice(harness), "search", {"project": "ads", "status": "open"}))][
        0
    ] == key


def test_an_unknown_ticket_is_a_clear_tool_error(harness: KitHarness) -> None:
    result = harness.call(alice(harness), "get", {"key": "ads-987654"})
    assert error(result) == "no ticket ads-987654"


def test_a_ticket_asked_for_under_another_project_is_not_found(harness: KitHarness) -> None:
    number = create(harness, f"Wrong project {unique_word()}")["key"].rsplit("-", 1)[1]
    result = harness.call(alice(harness), "get", {"key": f"platform-{number}"})
    assert error(result) == f"no ticket platform-{number}"


def test_a_move_the_workflow_does_not_allow_lists_the_allowed_statuses(harness: KitHarness) -> None:
    key = create(harness, f"Cannot reject {unique_word()}")["key"]
    result = harness.call(alice(harness), "transition", {"key": key, "to_status": "Rejected"}, elicitation=Answer())
    assert error(result) == (
        f"{key} cannot move from 'New' to 'Rejected'; allowed next statuses: In Progress, Resolved, Feedback, Closed"
    )
    assert data(harness.call(alice(harness), "get", {"key": key}))["status"] == "New"


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("get", {"key": "not a key"}, "'not a key' is not a ticket key"),
        ("search", {"status": "sleeping"}, "no status 'sleeping'; use open, closed, any or one of: New,"),
        ("search", {"limit": 0}, "limit must be between 1 and 100"),
        ("create", {"project": "nope", "summary": "x"}, "no project 'nope'; known projects: ads, platform"),
        ("create", {"project": "ads", "summary": "x", "type": "Epic"}, "no ticket type 'Epic' in ads; known types"),
        ("create", {"project": "ads", "summary": "   "}, "summary must not be empty"),
        ("comment", {"key": "ads-1", "body": " "}, "comment must not be empty"),
    ],
)
def test_bad_input_is_a_clear_tool_error(
    harness: KitHarness, tool: str, arguments: dict[str, Any], message: str
) -> None:
    result = harness.call(alice(harness), tool, arguments, elicitation=Answer())
    assert error(result).startswith(message), text(result)


def test_a_declined_confirmation_files_nothing(harness: KitHarness) -> None:
    word = unique_word()
    answer = Answer("decline")
    result = harness.call(alice(harness), "create", {"project": "ads", "summary": word}, elicitation=answer)
    assert result.is_error and "declined" in text(result)
    assert len(answer.messages) == 1
    assert data(harness.call(alice(harness), "search", {"query": word})) == []


def test_an_unreachable_tracker_is_a_clear_error_naming_its_url(
    harness: KitHarness, tickets_settings: TicketsSettings
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    unreachable = harness.with_resources(tickets_settings.model_copy(update={"redmine_url": url}))
    result = unreachable.call(alice(unreachable), "search", {"query": "anything"})
    assert error(result).startswith(f"cannot reach Redmine at {url}:"), text(result)


def test_a_refused_api_key_is_a_clear_error_that_does_not_echo_it(
    harness: KitHarness, tickets_settings: TicketsSettings
) -> None:
    wrong = "0" * 40
    refused = harness.with_resources(tickets_settings.model_copy(update={"redmine_api_key": SecretStr(wrong)}))
    result = refused.call(alice(refused), "get", {"key": "ads-1"})
    assert result.is_error and "refused the API key (HTTP 401)" in text(result)
    assert wrong not in text(result)


def test_a_missing_api_key_refuses_the_start_naming_the_variable(
    harness: KitHarness, tickets_settings: TicketsSettings
) -> None:
    without_key = tickets_settings.model_copy(update={"redmine_api_key": SecretStr("")})
    with pytest.raises(BackendError) as refused:
        harness.with_resources(without_key)
    assert str(refused.value) == "the redmine backend is not configured: set PORTCULLIS_TICKETS_REDMINE_API_KEY"


def test_a_client_the_server_does_not_admit_is_denied_before_the_tracker_is_asked(harness: KitHarness) -> None:
    token = harness.token("alice", groups=ALICE_GROUPS, business_groups=ALICE_BUSINESS_GROUPS, client_id="cursor")
    answer = Answer()
    for tool, arguments in (("get", {"key": "ads-1"}), ("create", {"project": "ads", "summary": "x"})):
        result = harness.call(token, tool, arguments, elicitation=answer)
        assert result.is_error and "client_not_allowed" in text(result), text(result)
    assert answer.messages == []
    assert harness.tool_names(token) == []


def test_every_tool_is_listed_for_an_admitted_caller(harness: KitHarness) -> None:
    assert harness.tool_names(alice(harness)) == ["comment", "create", "get", "search", "transition"]


def test_only_the_tools_that_change_tickets_are_marked_as_such(harness: KitHarness) -> None:
    async def listing() -> dict[str, bool | None]:
        async with harness.client(alice(harness)) as client:
            return {
                tool.name: tool.annotations.read_only_hint
                for tool in (await client.list_tools()).tools
                if tool.annotations
            }

    assert anyio.run(listing) == {
        "search": True,
        "get": True,
        "create": False,
        "comment": False,
        "transition": False,
    }
