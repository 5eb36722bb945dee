"""Human in the loop: a mutating tool runs only once the person confirms it (MCP elicitation through the real SDK
client), and a client that cannot ask is refused unless the policy waives the confirmation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client.context import ClientRequestContext
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette

from server_kit import ConfigurationError, GuardError, Kit, guarded, public
from tests.server_kit.support import (
    Issuer,
    build_app,
    catalog_with_tools,
    eliciting_client,
    kit_settings,
    mcp_client,
    real_authzen,
    started,
)

AGENT = {"groups": ["agents"], "business_groups": [], "email": ""}


def notes_kit(ran: list[str]) -> Kit:
    kit = Kit("demo")

    @kit.tool(mutating=True)
    @guarded(arguments=["region"])
    def close_region(region: str) -> str:
        """Close a sales region for the quarter."""
        ran.append(region)
        return f"closed {region}"

    @kit.tool()
    @guarded()
    def echo(message: str) -> str:
        return message

    return kit


@pytest.fixture(scope="module")
def authzen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    tmp = tmp_path_factory.mktemp("confirm")
    catalog = catalog_with_tools(tmp, "demo", [{"name": "close_region", "read_only": False}])
    with real_authzen(tmp, catalog) as (app, _):
        yield app


class Answer:
    """An elicitation callback that records the question and answers as told."""

    def __init__(self, action: str, content: dict[str, Any] | None = None):
        self.action = action
        self.content = content
        self.messages: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.messages.append(params.message)
        return types.ElicitResult(action=self.action, content=self.content)  # type: ignore[arg-type]


async def call(app: Starlette, token: str, answer: Answer | None, region: str) -> types.CallToolResult:
    async with started(app), eliciting_client(app, token, answer) as client:
        return await client.call_tool("close_region", {"region": region})


def text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


def test_a_mutating_tool_runs_after_the_person_confirms(issuer: Issuer, authzen: Starlette) -> None:
    ran: list[str] = []
    answer = Answer("accept", {"confirm": True})
    result = anyio.run(call, build_app(notes_kit(ran), issuer, authzen), issuer.token("alice"), answer, "emea")
    assert not result.is_error, text(result)
    assert ran == ["emea"]
    assert len(answer.messages) == 1
    assert "close_region" in answer.messages[0] and '"emea"' in answer.messages[0]
    assert "Close a sales region" in answer.messages[0]


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (Answer("decline"), "declined"),
        (Answer("cancel"), "cancelled"),
        (Answer("accept", {"confirm": False}), "not confirmed"),
    ],
)
def test_a_mutating_tool_does_not_run_when_the_person_does_not_confirm(
    issuer: Issuer, authzen: Starlette, answer: Answer, said: str
) -> None:
    ran: list[str] = []
    result = anyio.run(call, build_app(notes_kit(ran), issuer, authzen), issuer.token("alice"), answer, "emea")
    assert result.is_error
    assert said in text(result)
    assert ran == []


def test_a_client_that_cannot_ask_is_refused_with_a_clear_message(issuer: Issuer, authzen: Starlette) -> None:
    ran: list[str] = []
    result = anyio.run(call, build_app(notes_kit(ran), issuer, authzen), issuer.token("alice"), None, "emea")
    assert result.is_error
    assert "confirmation_required" in text(result) and "elicitation" in text(result)
    assert ran == []


def test_the_policy_waives_the_confirmation_for_an_unattended_agent(issuer: Issuer, authzen: Starlette) -> None:
    ran: list[str] = []
    token = issuer.token("internal-agent", claims=AGENT, client_id="internal-agent")
    result = anyio.run(call, build_app(notes_kit(ran), issuer, authzen), token, None, "apac")
    assert not result.is_error, text(result)
    assert ran == ["apac"]


def test_a_call_the_policy_denies_is_refused_before_anyone_is_asked(issuer: Issuer, authzen: Starlette) -> None:
    ran: list[str] = []
    answer = Answer("accept", {"confirm": True})
    token = issuer.token("alice", client_id="cursor")  # a client application the demo does not admit
    result = anyio.run(call, build_app(notes_kit(ran), issuer, authzen), token, answer, "emea")
    assert result.is_error and "client_not_allowed" in text(result)
    assert answer.messages == [] and ran == []


def test_a_confirmation_cannot_be_replayed_by_another_person(issuer: Issuer, authzen: Starlette) -> None:
    ran: list[str] = []
    app = build_app(notes_kit(ran), issuer, authzen)
    accept = {"portcullis:confirm.close_region": types.ElicitResult(action="accept", content={"confirm": True})}

    async def scenario() -> tuple[Any, Any]:
        async with started(app):
            async with eliciting_client(app, issuer.token("alice"), Answer("decline")) as alice:
                first = await alice.session.call_tool("close_region", {"region": "emea"}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult)
            assert list(first.input_requests or {}) == list(accept)
            token = issuer.token("bob", claims={"groups": ["eng"]})
            async with eliciting_client(app, token, Answer("decline")) as bob:
                replay: object
                try:
                    replay = await bob.session.call_tool(
                        "close_region",
                        {"region": "emea"},
                        input_responses=accept,  # type: ignore[arg-type]
                        request_state=first.request_state,
                        allow_input_required=True,
                    )
                except Exception as exc:  # the SDK refuses a state sealed for another principal
                    replay = exc

            # Control: the same answer and state from alice herself run the tool.
            async with eliciting_client(app, issuer.token("alice"), Answer("decline")) as alice:
                own = await alice.session.call_tool(
                    "close_region",
                    {"region": "emea"},
                    input_responses=accept,  # type: ignore[arg-type]
                    request_state=first.request_state,
                    allow_input_required=True,
                )
            return replay, own

    replay, own = anyio.run(scenario)
    assert isinstance(replay, MCPError) and "requestState" in str(replay)
    assert isinstance(own, types.CallToolResult) and not own.is_error
    assert ran == ["emea"]


def test_tool_annotations_say_which_tools_change_data(issuer: Issuer, authzen: Starlette) -> None:
    app = build_app(notes_kit([]), issuer, authzen)

    async def listing() -> dict[str, Any]:
        async with started(app), mcp_client(app, issuer.token("alice")) as client:
            return {tool.name: tool.annotations for tool in (await client.list_tools()).tools}

    tools = anyio.run(listing)
    assert tools["close_region"].read_only_hint is False
    assert tools["echo"].read_only_hint is True


def test_a_mutating_server_refuses_production_without_shared_request_state_keys(issuer: Issuer) -> None:
    kit = notes_kit([])
    settings = kit_settings(issuer, environment="production", authz_credential="a-long-production-credential-000")
    with pytest.raises(ConfigurationError, match="REQUEST_STATE_KEYS"):
        kit.create_app(settings)
    keyed = kit_settings(
        issuer,
        environment="production",
        authz_credential="a-long-production-credential-000",
        request_state_keys=["k" * 32],
    )
    assert kit.create_app(keyed) is not None


def test_request_state_keys_shorter_than_32_bytes_are_refused(issuer: Issuer) -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        kit_settings(issuer, request_state_keys=["short"])


def test_mutating_must_be_a_boolean_and_agree_with_the_read_only_hint() -> None:
    kit = Kit("demo")
    with pytest.raises(GuardError, match="contradicts"):

        @kit.tool(mutating=True, annotations=types.ToolAnnotations(read_only_hint=True))
        @public(reason="test")
        def wipe() -> None: ...

    with pytest.raises(GuardError, match="True or False"):

        @kit.tool(mutating="yes")  # type: ignore[arg-type]
        @public(reason="test")
        def wipe_again() -> None: ...


def test_a_tool_may_not_take_the_reserved_confirmation_parameter(issuer: Issuer, authzen: Starlette) -> None:
    kit = Kit("demo")

    @kit.tool()
    @public(reason="test")
    def odd(portcullis_confirmation: str) -> str:
        return portcullis_confirmation

    with pytest.raises(GuardError, match="reserved"):
        build_app(kit, issuer, authzen)


def test_the_state_key_path_is_stable(tmp_path: Path) -> None:
    # The wire key names the tool, so a confirmation round resumes on any replica running the same code.
    kit = notes_kit([])
    assert kit.mutating_tools == frozenset({"close_region"})
