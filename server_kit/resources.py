"""Resources: what a server's tools share (an engine, a client of a backend, the backend's settings), built once
when the app starts, closed when it stops, and handed to every tool that declares a parameter of its type, the
way `Caller` is.

    @kit.resource
    def warehouse_settings() -> WarehouseSettings:
        return WarehouseSettings()                          # read once, at start

    @kit.resource
    def warehouse(settings: WarehouseSettings) -> Iterator[Warehouse]:
        client = Warehouse(settings.url)
        try:
            yield client
        finally:
            client.close()                                  # at stop

    @kit.tool()
    @guarded()
    def tables(warehouse: Warehouse) -> list[str]: ...      # injected; not part of the input schema

A factory is a function (plain or async) returning its resource, or a generator (plain or async) yielding it
once, whose code after the `yield` runs when the app stops (in a `finally:`, also when a later factory fails or
the app stops on an error). The type it provides is its return annotation (a
generator's item type). Its parameters are typed `KitSettings` or with a resource declared before it, so the
declaration order is the build order and there can be no cycle. The app builds the resources its tools use (and
what those need), in declaration order, before it serves; a factory's error stops the start.

Tests and `Kit.serve` may hand the app ready instances (`create_app(settings, resources=[...])`): each takes the
place of the factory of its type, and of what only that factory needed; the kit never closes an instance it was
handed.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.mcpserver import Context

from server_kit.caller import Caller
from server_kit.errors import ConfigurationError, GuardError, KitError
from server_kit.guards import tool_parameters
from server_kit.settings import KitSettings

__all__ = [
    "OpenResources",
    "ResourceSpec",
    "match_provided",
    "open_resources",
    "resource_spec",
    "resource_type",
    "tool_resources",
]

_Kind = Literal["function", "coroutine", "generator", "async_generator"]
_GENERATORS = (collections.abc.Iterator, collections.abc.Generator, collections.abc.Iterable)
_ASYNC_GENERATORS = (collections.abc.AsyncIterator, collections.abc.AsyncGenerator, collections.abc.AsyncIterable)
_RESERVED: tuple[type, ...] = (Caller, KitSettings, Context, object)


@dataclass(frozen=True)
class ResourceSpec:
    """A resource as declared with `Kit.resource`.

    Attributes:
        factory: the function that builds it.
        provides: the type tools ask for it by.
        needs: the factory's parameters and their types (`KitSettings` or resources declared earlier).
        kind: how the factory hands the resource over (returns, awaits, yields once).
    """

    factory: Callable[..., Any]
    provides: type
    needs: tuple[tuple[str, type], ...]
    kind: _Kind


def resource_type(annotation: Any, types: Iterable[type]) -> type | None:
    """The declared resource type `annotation` is (by identity), else None."""
    return next((kind for kind in types if annotation is kind), None)


def tool_resources(fn: Callable[..., Any], types: Iterable[type]) -> dict[str, type]:
    """The parameters of a tool function typed with one of `types`, and their type ({} while its annotations
    cannot be resolved yet: building the app resolves them again and refuses what does not resolve)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a name defined later in its module
        return {}
    kinds = tuple(types)
    found = {name: resource_type(hint, kinds) for name, hint in hints.items() if name != "return"}
    return {name: kind for name, kind in found.items() if kind is not None}


def _kind_of(factory: Callable[..., Any]) -> _Kind:
    if inspect.isasyncgenfunction(factory):
        return "async_generator"
    if inspect.isgeneratorfunction(factory):
        return "generator"
    return "coroutine" if inspect.iscoroutinefunction(factory) else "function"


def _provided_type(name: str, returned: Any, kind: _Kind) -> type:
    if kind in ("generator", "async_generator"):
        wrappers = _GENERATORS if kind == "generator" else _ASYNC_GENERATORS
        arguments = typing.get_args(returned)
        if typing.get_origin(returned) not in wrappers or not arguments:
            shape = "Iterator[T]" if kind == "generator" else "AsyncIterator[T]"
            raise GuardError(f"@kit.resource on {name}: a generator factory is annotated -> {shape}")
        returned = arguments[0]
    if not isinstance(returned, type):
        raise GuardError(f"@kit.resource on {name}: the return annotation must be a class (got {returned!r})")
    if returned in _RESERVED:
        raise GuardError(f"@kit.resource on {name}: {returned.__name__} is the kit's own and cannot be a resource")
    if returned.__module__ == "builtins":
        # A str or a dict resource would be injected into every tool argument of that type.
        raise GuardError(f"@kit.resource on {name}: provide a class of your own, not {returned.__name__}")
    return returned


def resource_spec(factory: Callable[..., Any], declared: Mapping[type, ResourceSpec]) -> ResourceSpec:
    """Check a factory when `@kit.resource` is applied.

    Raises:
        GuardError: not a function, annotations that cannot be resolved, a return annotation that is not a class
            (or the item of an iterator, for a generator), a type already provided, or a parameter typed other
            than `KitSettings` or a resource declared before.
    """
    parameters = tool_parameters(factory, "@kit.resource")
    name = factory.__qualname__
    try:
        hints = typing.get_type_hints(factory)
    except Exception as exc:  # NameError for an unknown name, TypeError for a malformed annotation
        raise GuardError(f"@kit.resource on {name}: cannot resolve its annotations ({exc})") from None
    if "return" not in hints:
        raise GuardError(f"@kit.resource on {name}: annotate the type it provides (-> T)")
    kind = _kind_of(factory)
    provides = _provided_type(name, hints["return"], kind)
    if provides in declared:
        other = declared[provides].factory.__qualname__
        raise GuardError(f"@kit.resource on {name}: {other} already provides {provides.__name__}")
    needs: list[tuple[str, type]] = []
    for parameter in parameters:
        wanted = hints.get(parameter)
        found = KitSettings if wanted is KitSettings else resource_type(wanted, declared)
        if found is None:
            raise GuardError(
                f"@kit.resource on {name}: parameter {parameter!r} must be typed KitSettings or a resource declared "
                f"before it (declared: {', '.join(kind.__name__ for kind in declared) or 'none'})"
            )
        needs.append((parameter, found))
    return ResourceSpec(factory, provides, tuple(needs), kind)


def match_provided(specs: Mapping[type, ResourceSpec], provided: Iterable[object]) -> dict[type, object]:
    """Which declared type each ready instance stands for.

    Raises:
        ConfigurationError: an instance of no declared resource type, of two, or two instances for one type.
    """
    matched: dict[type, object] = {}
    for instance in provided:
        kinds = [kind for kind in specs if _instance_of(instance, kind)]
        if len(kinds) != 1:
            what = "no" if not kinds else "more than one"
            raise ConfigurationError(f"{type(instance).__name__} is an instance of {what} declared resource type")
        if kinds[0] in matched:
            raise ConfigurationError(f"two instances given for the resource {kinds[0].__name__}")
        matched[kinds[0]] = instance
    return matched


def _instance_of(instance: object, kind: type) -> bool:
    try:
        return isinstance(instance, kind)
    except TypeError:  # a Protocol that is not runtime-checkable: only given through a subclass of it
        return type(instance) is kind or kind in type(instance).__mro__


def _wanted(specs: Mapping[type, ResourceSpec], used: Iterable[type], provided: Mapping[type, object]) -> list[type]:
    """The types to build: those used and not provided, and what their factories need, in declaration order."""
    wanted: set[type] = set()
    pending = [kind for kind in used if kind not in provided]
    while pending:
        kind = pending.pop()
        if kind in wanted:
            continue
        wanted.add(kind)
        pending += [need for _, need in specs[kind].needs if need is not KitSettings and need not in provided]
    return [kind for kind in specs if kind in wanted]


class OpenResources:
    """The resources of one running app: empty until the app starts, read by the tools on every call."""

    def __init__(self) -> None:
        self._open: dict[type, object] | None = None

    def get(self, kind: type) -> object:
        """The open resource of type `kind`.

        Raises:
            KitError: the app is not running (its lifespan has not started, or has ended).
        """
        if self._open is None or kind not in self._open:
            raise KitError(f"the resource {kind.__name__} is not open: the server is not running")
        return self._open[kind]

    @asynccontextmanager
    async def opened(self, values: dict[type, object]) -> AsyncIterator[None]:
        """Serve `values` for the duration of the block."""
        self._open = values
        try:
            yield
        finally:
            self._open = None


@asynccontextmanager
async def open_resources(
    specs: Mapping[type, ResourceSpec],
    settings: KitSettings,
    *,
    used: Iterable[type],
    provided: Mapping[type, object],
) -> AsyncIterator[dict[type, object]]:
    """Build the resources the tools use (and what they need), in declaration order; close them, in reverse,
    when the block ends. Instances in `provided` are used as they are and never closed.

    Raises:
        Exception: whatever a factory raises (the resources built before it are closed first).
    """
    values: dict[type, object] = dict(provided)
    async with AsyncExitStack() as stack:
        for kind in _wanted(specs, used, provided):
            spec = specs[kind]
            arguments = {name: settings if need is KitSettings else values[need] for name, need in spec.needs}
            if spec.kind == "async_generator":
                values[kind] = await stack.enter_async_context(asynccontextmanager(spec.factory)(**arguments))
            elif spec.kind == "generator":
                values[kind] = stack.enter_context(contextmanager(spec.factory)(**arguments))
            elif spec.kind == "coroutine":
                values[kind] = await spec.factory(**arguments)
            else:
                values[kind] = spec.factory(**arguments)
        yield values
