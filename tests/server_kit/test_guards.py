"""The permission markers check the tool when applied: misuse fails at import, never at the first call."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.server.mcpserver import Context

from server_kit import Caller, Guard, GuardError, Kit, Public, UnguardedToolError, guarded, public
from server_kit.errors import ConfigurationError
from server_kit.guards import access_of
from tests.server_kit.support import kit_settings, running_issuer


def test_guarding_something_that_is_not_a_function_fails_at_decoration() -> None:
    class Report:
        pass

    with pytest.raises(GuardError, match="applies to a function"):
        guarded()(Report)
    with pytest.raises(GuardError, match="applies to a function"):
        public(reason="reads nothing")(42)  # type: ignore[type-var]


def test_a_guard_naming_an_argument_the_tool_does_not_take_fails_at_decoration() -> None:
    with pytest.raises(GuardError, match=r"names regoin, which the tool does not take \(it takes: region\)"):

        @guarded(arguments=["regoin"])
        def revenue(region: str) -> str:
            return region


def test_guard_properties_naming_an_unknown_argument_fail_at_decoration() -> None:
    with pytest.raises(GuardError, match=r"properties=\.\.\.\) on .*names table"):

        @guarded(properties=lambda table: {"table": table})
        def query(sql: str) -> str:
            return sql


def test_guard_properties_must_be_a_function() -> None:
    with pytest.raises(GuardError, match="applies to a function"):
        guarded(properties={"region": "emea"})  # type: ignore[arg-type]


def test_guard_arguments_must_be_a_list_of_names_not_a_string() -> None:
    with pytest.raises(GuardError, match="not the string 'region'"):
        guarded(arguments="region")
    with pytest.raises(GuardError, match="distinct argument names"):
        guarded(arguments=["region", "region"])


def test_guarded_without_parentheses_fails_with_a_clear_error() -> None:
    with pytest.raises(GuardError, match=r"use @guarded\(\.\.\.\) with parentheses"):

        @guarded
        def echo(message: str) -> str:
            return message


def test_guarded_with_an_empty_action_fails() -> None:
    with pytest.raises(GuardError, match="action must be a non-empty string"):
        guarded(action=" ")


@pytest.mark.parametrize("reason", ["", "   "])
def test_public_without_a_reason_fails(reason: str) -> None:
    with pytest.raises(GuardError, match="needs a non-empty reason"):
        public(reason=reason)


def test_public_without_parentheses_or_arguments_fails() -> None:
    with pytest.raises(GuardError, match=r"use @public\(reason='\.\.\.'\)"):

        @public  # type: ignore[arg-type]
        def echo(message: str) -> str:
            return message

    with pytest.raises(TypeError, match="reason"):
        public()  # type: ignore[call-arg]


def test_a_tool_marked_twice_fails() -> None:
    with pytest.raises(GuardError, match="already marked @public"):

        @guarded()
        @public(reason="reads nothing")
        def echo(message: str) -> str:
            return message


def test_a_guard_on_a_tool_with_variadic_or_positional_only_parameters_fails() -> None:
    with pytest.raises(GuardError, match=r"\*args/\*\*kwargs \(kwargs\)"):

        @guarded()
        def anything(**kwargs: Any) -> str:
            return ""

    with pytest.raises(GuardError, match=r"positional-only parameters \(sql\)"):

        @guarded()
        def query(sql: str, /) -> str:
            return sql


def test_kit_tool_without_parentheses_or_twice_the_same_name_fails() -> None:
    kit = Kit("demo")
    with pytest.raises(GuardError, match=r"use @kit.tool\(\) with parentheses"):
        kit.tool(lambda: "")  # type: ignore[arg-type]

    @kit.tool()
    @public(reason="reads nothing")
    def echo(message: str) -> str:
        return message

    with pytest.raises(GuardError, match="already has a tool named 'echo'"):
        kit.tool(name="echo")(lambda message: message)


def test_markers_stack_in_either_order_with_kit_tool() -> None:
    kit = Kit("demo")

    @kit.tool()
    @guarded(arguments=["region"])
    def below(region: str) -> str:
        return region

    @guarded(arguments=["region"])
    @kit.tool()
    def above(region: str) -> str:
        return region

    tools = kit.tools
    assert isinstance(tools["below"], Guard) and isinstance(tools["above"], Guard)
    assert tools["above"].arguments == ("region",)


def test_a_server_with_a_tool_neither_guarded_nor_public_refuses_to_build() -> None:
    kit = Kit("demo")

    @kit.tool()
    @public(reason="reads nothing")
    def echo(message: str) -> str:
        return message

    @kit.tool()
    def drop_table(table: str) -> str:
        return table

    with pytest.raises(UnguardedToolError, match="drop_table are neither guarded nor public") as refused:
        kit.check()
    assert refused.value.tools == ["drop_table"]
    with pytest.raises(UnguardedToolError), running_issuer() as issuer:
        kit.create_app(kit_settings(issuer))


def test_a_guard_reading_the_caller_or_context_parameter_fails_when_the_app_is_built() -> None:
    kit = Kit("demo")

    @kit.tool()
    @guarded(arguments=["caller"])
    def whoami(caller: Caller) -> str:
        return caller.user

    with running_issuer() as issuer, pytest.raises(GuardError, match="reads caller, which is not a tool argument"):
        kit.create_app(kit_settings(issuer))

    other = Kit("demo")

    @other.tool()
    @guarded(arguments=["ctx"])
    def progress(ctx: Context) -> str:
        return ""

    with running_issuer() as issuer, pytest.raises(GuardError, match="reads ctx"):
        other.create_app(kit_settings(issuer))


def test_policy_inputs_combine_named_arguments_and_derived_properties() -> None:
    @guarded(arguments=["region"], properties=lambda day, region: {"period": f"{region}:{day or 'all'}"})
    def revenue(region: str, day: str | None = None, limit: int = 10) -> str:
        return region

    guard = access_of(revenue)
    assert isinstance(guard, Guard)
    assert guard.policy_inputs({"region": "emea", "day": None, "limit": 5}) == {"region": "emea", "period": "emea:all"}
    assert access_of(public(reason="why")(lambda: "")) == Public("why")


def test_a_server_name_must_be_a_dns_label() -> None:
    with pytest.raises(ConfigurationError, match="lower-case DNS label"):
        Kit("Demo Server")
