"""Resources: built once when the app starts, injected into the tools that take their type (kept out of the input
schema), closed when it stops; a misdeclared resource fails at import, like a misused guard."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult
from starlette.applications import Starlette

from server_kit import Caller, ConfigurationError, GuardError, Kit, KitSettings, guarded, public
from tests.server_kit.support import Issuer, authz_client, kit_settings, mcp_client, started


class Ledger:
    """A backend of the tests: records how often it was opened and closed."""

    def __init__(self, owner: str = "factory") -> None:
        self.owner = owner
        self.opened = 0
        self.closed = 0


class LedgerSettings:
    def __init__(self, owner: str) -> None:
        self.owner = owner


def ledger_kit(built: list[Ledger]) -> Kit:
    kit = Kit("demo")

    @kit.resource
    def ledger_settings(settings: KitSettings) -> LedgerSettings:
        return LedgerSettings(f"factory of {settings.server}")

    @kit.resource
    def ledger(settings: LedgerSettings) -> Iterator[Ledger]:
        opened = Ledger(settings.owner)
        opened.opened += 1
        built.append(opened)
        yield opened
        opened.closed += 1

    @kit.tool(name="get_revenue_metrics")
    @public(reason="Says who owns the ledger; reads no data.")
    def owner(ledger: Ledger, caller: Caller, region: str = "") -> str:
        return f"{ledger.owner} for {caller.user}{region}"

    return kit


def serve(app: Starlette, token: str, calls: int) -> tuple[dict[str, Any], list[CallToolResult]]:
    async def run() -> tuple[dict[str, Any], list[CallToolResult]]:
        async with started(app), mcp_client(app, token) as client:
            return await body(client)

    async def body(client: Client) -> tuple[dict[str, Any], list[CallToolResult]]:
        (tool,) = (await client.list_tools()).tools
        return tool.input_schema, [await client.call_tool("get_revenue_metrics", {}) for _ in range(calls)]

    return anyio.run(run)


def text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def test_a_resource_is_built_once_at_start_injected_into_every_call_and_closed_at_stop(
    issuer: Issuer, authzen: Starlette
) -> None:
    built: list[Ledger] = []
    kit = ledger_kit(built)
    app = kit.create_app(kit_settings(issuer), authz_http=authz_client(authzen))
    assert built == []  # nothing is built before the app starts
    schema, results = serve(app, issuer.token("alice"), calls=3)
    assert set(schema.get("properties", {})) == {"region"}
    assert [text(result) for result in results] == ["factory of demo for alice"] * 3
    assert [(ledger.opened, ledger.closed) for ledger in built] == [(1, 1)]


def test_a_resource_handed_to_the_app_replaces_its_factory_and_is_not_closed(
    issuer: Issuer, authzen: Starlette
) -> None:
    built: list[Ledger] = []
    given = Ledger("the test")
    app = ledger_kit(built).create_app(kit_settings(issuer), authz_http=authz_client(authzen), resources=[given])
    _, results = serve(app, issuer.token("bob"), calls=1)
    assert text(results[0]) == "the test for bob"
    assert built == [] and given.closed == 0


def test_a_factory_that_fails_stops_the_start_and_closes_what_was_built(issuer: Issuer, authzen: Starlette) -> None:
    closed: list[str] = []
    kit = Kit("demo")

    @kit.resource
    async def ledger() -> AsyncIterator[Ledger]:
        try:
            yield Ledger()
        finally:
            closed.append("ledger")

    @kit.resource
    def settings(ledger: Ledger) -> LedgerSettings:
        raise ConnectionError("the ledger's backend is down")

    @kit.tool()
    @guarded()
    def get_revenue_metrics(settings: LedgerSettings) -> str:
        return settings.owner

    app = kit.create_app(kit_settings(issuer), authz_http=authz_client(authzen))
    with pytest.raises(ConnectionError, match="the ledger's backend is down"):
        serve(app, issuer.token("alice"), calls=1)
    assert closed == ["ledger"]


def test_an_instance_of_no_declared_resource_type_is_refused_when_the_app_is_built(issuer: Issuer) -> None:
    class Unrelated:
        pass

    with pytest.raises(ConfigurationError, match="Unrelated is an instance of no declared resource type"):
        ledger_kit([]).create_app(kit_settings(issuer), resources=[Ledger(), Unrelated()])


def test_a_factory_without_the_type_it_provides_fails_at_decoration() -> None:
    kit = Kit("demo")
    with pytest.raises(GuardError, match=r"annotate the type it provides"):

        @kit.resource
        def ledger():  # type: ignore[no-untyped-def]
            return Ledger()

    with pytest.raises(GuardError, match=r"a generator factory is annotated -> Iterator\[T\]"):

        @kit.resource
        def opened() -> Ledger:  # type: ignore[misc]
            yield Ledger()


def test_a_builtin_or_a_kit_type_cannot_be_a_resource() -> None:
    kit = Kit("demo")
    with pytest.raises(GuardError, match="provide a class of your own, not str"):

        @kit.resource
        def region() -> str:
            return "emea"

    with pytest.raises(GuardError, match="Caller is the kit's own"):

        @kit.resource
        def caller() -> Caller:
            return Caller("alice")


def test_a_factory_may_take_only_the_settings_and_resources_declared_before_it() -> None:
    kit = Kit("demo")
    with pytest.raises(GuardError, match=r"parameter 'settings' must be typed KitSettings or a resource declared"):

        @kit.resource
        def ledger(settings: LedgerSettings) -> Ledger:
            return Ledger(settings.owner)


def test_a_type_is_provided_by_one_factory_only() -> None:
    kit = Kit("demo")

    @kit.resource
    def ledger() -> Ledger:
        return Ledger()

    with pytest.raises(GuardError, match="ledger already provides Ledger"):

        @kit.resource
        def other_ledger() -> Ledger:
            return Ledger()


def test_a_resource_declared_after_a_tool_that_takes_it_fails_at_decoration() -> None:
    kit = Kit("demo")

    @kit.tool()
    @guarded()
    def get_revenue_metrics(ledger: Ledger) -> str:
        return ledger.owner

    with pytest.raises(GuardError, match=r"declare it before the tools that take a Ledger \(get_revenue_metrics\)"):

        @kit.resource
        def ledger() -> Ledger:
            return Ledger()


def test_resource_with_parentheses_fails_with_a_clear_error() -> None:
    with pytest.raises(GuardError, match="use @kit.resource without parentheses"):
        Kit("demo").resource()


def test_a_guard_reading_a_resource_parameter_is_refused_when_the_app_is_built(issuer: Issuer) -> None:
    kit = Kit("demo")

    @kit.resource
    def ledger() -> Ledger:
        return Ledger()

    @kit.tool()
    @guarded(arguments=["ledger"])
    def get_revenue_metrics(ledger: Ledger) -> str:
        return ledger.owner

    with pytest.raises(GuardError, match="the guard reads ledger, which is not a tool argument"):
        kit.create_app(kit_settings(issuer))
