"""Permission markers for tools: `@guarded(...)` (ask the policy on every call) or `@public(reason=...)`.

Both check the function when applied, so a mistake fails at import with a `GuardError`, never at the first call:
a non-function, a guard naming an argument the tool does not have, a public marker without a reason, two
markers on one tool. The marker is an attribute on the function; `Kit.tool` reads it when the app is built, so
the two decorators may be stacked in either order.

    @kit.tool()
    @guarded(arguments=["region"])
    def get_revenue_metrics(region: str | None = None) -> list[dict[str, Any]]: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from server_kit.errors import GuardError

__all__ = ["ACCESS_ATTRIBUTE", "Guard", "Public", "access_of", "guarded", "public", "tool_parameters"]

ACCESS_ATTRIBUTE = "__portcullis_access__"
_F = TypeVar("_F", bound=Callable[..., Any])
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


@dataclass(frozen=True)
class Guard:
    """A tool the policy decides on every call.

    Attributes:
        action: the AuthZEN action name ("call" for tools).
        arguments: the tool arguments sent to the policy as they are (`resource.properties.arguments`).
        properties: derives more policy inputs from tool arguments; called with the arguments its parameters name.
        property_arguments: the parameter names of `properties`.
    """

    action: str
    arguments: tuple[str, ...]
    properties: Callable[..., Mapping[str, Any]] | None
    property_arguments: tuple[str, ...]

    def policy_inputs(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """What the policy reads of one call's validated arguments.

        Raises:
            TypeError: `properties` returned something other than a mapping (or raised itself).
        """
        inputs = {name: kwargs.get(name) for name in self.arguments}
        if self.properties is not None:
            derived = self.properties(**{name: kwargs.get(name) for name in self.property_arguments})
            if not isinstance(derived, Mapping):
                raise TypeError(f"guard properties must return a mapping, not {type(derived).__name__}")
            inputs.update(derived)
        return inputs


@dataclass(frozen=True)
class Public:
    """A tool anyone with a valid token for this server may call, and why that is acceptable."""

    reason: str


def tool_parameters(fn: Callable[..., Any], what: str) -> dict[str, inspect.Parameter]:
    """The named parameters of a tool function.

    Raises:
        GuardError: `fn` is not a function, or takes *args, **kwargs or positional-only parameters (tools are
            called with keyword arguments, and the policy reads them by name).
    """
    if not inspect.isfunction(fn):
        raise GuardError(f"{what} applies to a function, not to {type(fn).__name__} {fn!r}")
    parameters = inspect.signature(fn).parameters
    variadic = [name for name, p in parameters.items() if p.kind in _VARIADIC]
    if variadic:
        raise GuardError(f"{what} on {fn.__qualname__}: *args/**kwargs ({', '.join(variadic)}) are not supported")
    positional = [name for name, p in parameters.items() if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    if positional:
        raise GuardError(f"{what} on {fn.__qualname__}: positional-only parameters ({', '.join(positional)})")
    return dict(parameters)


def _mark(fn: Callable[..., Any], access: Guard | Public, what: str) -> None:
    existing = access_of(fn)
    if existing is not None:
        raise GuardError(f"{what} on {fn.__qualname__}: the tool is already marked {_describe(existing)}")
    setattr(fn, ACCESS_ATTRIBUTE, access)


def _describe(access: Guard | Public) -> str:
    return f"@public(reason={access.reason!r})" if isinstance(access, Public) else f"@guarded(action={access.action!r})"


def access_of(fn: Callable[..., Any]) -> Guard | Public | None:
    """The marker on a tool function, or None when it has neither."""
    access = getattr(fn, ACCESS_ATTRIBUTE, None)
    return access if isinstance(access, Guard | Public) else None


def guarded(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    action: str = "call",
    arguments: Iterable[str] = (),
    properties: Callable[..., Mapping[str, Any]] | None = None,
) -> Callable[[_F], _F]:
    """Mark a tool as decided by the policy on every call (AuthZEN, fail closed).

    The policy sees the caller, `action`, and the tool (`type: tool`, `id`: its name, `properties.server`, and
    `properties.arguments`: the tool arguments named in `arguments` plus what `properties` returns). Only those
    inputs key the decision cache, so name only what the policy reads.

    Args:
        action: the AuthZEN action, "call" unless the policy speaks of another.
        arguments: tool arguments passed to the policy unchanged.
        properties: a function whose parameters are tool arguments, returning more policy inputs
            (`properties=lambda region: {"region": region or "all"}`).

    Raises:
        GuardError: used without parentheses, on a non-function, with an argument the tool does not have, with
            a `properties` that is not a function or names an unknown argument, or on a tool already marked.
    """
    if fn is not None:
        raise GuardError("use @guarded(...) with parentheses (and keyword arguments)")
    if not isinstance(action, str) or not action.strip():
        raise GuardError("@guarded: action must be a non-empty string")
    if isinstance(arguments, str):
        raise GuardError(f"@guarded: arguments must be a list of argument names, not the string {arguments!r}")
    names = tuple(arguments)
    if not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
        raise GuardError(f"@guarded: arguments must be distinct argument names, got {list(names)!r}")
    property_arguments: tuple[str, ...] = ()
    if properties is not None:
        property_arguments = tuple(tool_parameters(properties, "@guarded(properties=...)"))

    def decorate(tool: _F) -> _F:
        parameters = tool_parameters(tool, "@guarded")
        for label, wanted in (("arguments", names), ("properties", property_arguments)):
            unknown = [name for name in wanted if name not in parameters]
            if unknown:
                raise GuardError(
                    f"@guarded({label}=...) on {tool.__qualname__} names {', '.join(unknown)}, which the tool "
                    f"does not take (it takes: {', '.join(parameters) or 'nothing'})"
                )
        _mark(tool, Guard(action.strip(), names, properties, property_arguments), "@guarded")
        return tool

    return decorate


def public(reason: str) -> Callable[[_F], _F]:
    """Mark a tool as callable by anyone holding a valid token for this server, and say why.

    Raises:
        GuardError: used without a reason (or without parentheses), on a non-function, or on a tool already marked.
    """
    if callable(reason):
        raise GuardError("use @public(reason='...'): a public tool must say why it needs no policy decision")
    if not isinstance(reason, str) or not reason.strip():
        raise GuardError("@public needs a non-empty reason: why may anyone with a token call this tool?")

    def decorate(tool: _F) -> _F:
        tool_parameters(tool, "@public")
        _mark(tool, Public(reason.strip()), "@public")
        return tool

    return decorate
