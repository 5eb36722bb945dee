"""How a kit tool runs: the wrapper registered with the SDK, and the filter that trims `tools/list`.

The wrapper takes the tool's own signature minus its `Caller` and resource parameters (so they stay out of the
input schema), plus the SDK's `Context` when the tool did not ask for it. On each call it finds the verified
caller the bearer middleware left in the request's ASGI scope, asks the policy when the tool is guarded (raising
`AccessDenied`, which the SDK turns into an `isError` result with the reason), injects the caller and the open
resources (server_kit.resources), runs the tool, and records metrics and one JSON log line.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.server.mcpserver.utilities.context_injection import find_context_parameter
from mcp_types import ToolAnnotations
from pydantic import BaseModel

from portcullis_contracts.reasons import policy_reason_text
from server_kit.authz import AUTHZ_ERROR, AUTHZ_UNAVAILABLE, Authorizer, Check, Verdict
from server_kit.caller import CALLER_SCOPE_KEY, Caller
from server_kit.confirm import (
    CONFIRMATION_REQUIRED,
    WAIVE_ACTION,
    Confirmation,
    Waived,
    can_elicit,
    confirmation_message,
    require_confirmed,
)
from server_kit.errors import AccessDenied, GuardError, NotConfirmed
from server_kit.guards import Guard, Public
from server_kit.observability import KitMetrics, bound_log_fields
from server_kit.resources import OpenResources, resource_type

__all__ = ["ToolListFilter", "ToolRuntime", "ToolSpec", "build_tool", "caller_of_request"]

logger = logging.getLogger("portcullis.kit.tools")
_CONTEXT_PARAMETER = "portcullis_context"
_CONFIRMATION_PARAMETER = "portcullis_confirmation"
UNAUTHENTICATED = "unauthenticated"
GUARD_FAILED = "guard_failed"
_YOUR_CLIENT = "your client application"
# The kit's own reason codes; a policy's are worded by portcullis_contracts.reasons.
_REASON_TEXT = {
    AUTHZ_UNAVAILABLE: "the authorization service is unavailable, so the call was denied; try again later",
    AUTHZ_ERROR: "the authorization service gave no usable decision, so the call was denied",
    UNAUTHENTICATED: "no verified caller for this request",
    GUARD_FAILED: "the tool's guard could not compute its policy inputs",
    CONFIRMATION_REQUIRED: (
        "this tool changes data and needs your confirmation, but your client cannot ask you (it does not support "
        "MCP form elicitation); use a client that does, or ask for the confirmation to be waived by policy"
    ),
}


@dataclass(frozen=True)
class ToolSpec:
    """A tool as declared with `Kit.tool`."""

    fn: Callable[..., Any]
    name: str
    title: str | None = None
    description: str | None = None
    annotations: ToolAnnotations | None = None
    structured_output: bool | None = None
    mutating: bool = False


@dataclass(frozen=True)
class ToolRuntime:
    """What running tools needs: the server's name, its authorizer, its metrics and its open resources.

    (Not `authz_service.runtime.Runtime`, the decision point's policy and catalog holder: hence the name.)
    """

    server: str
    authorizer: Authorizer
    metrics: KitMetrics
    resources: OpenResources = field(default_factory=OpenResources)


def caller_of_request(request: Any) -> Caller | None:
    """The verified caller the bearer middleware stored on this request, if any."""
    scope = getattr(request, "scope", None)
    caller = scope.get(CALLER_SCOPE_KEY) if isinstance(scope, Mapping) else None
    return caller if isinstance(caller, Caller) else None


def _caller_of(ctx: Context[Any, Any] | None) -> Caller | None:
    try:
        return caller_of_request(ctx.request_context.request) if ctx is not None else None
    except ValueError:  # outside a request
        return None


def denial(reason: str, decision_id: str = "") -> AccessDenied:
    """The error a denied call raises: the human reason, the reason code and the decision id."""
    text = (
        _REASON_TEXT.get(reason)
        or policy_reason_text(reason, server="this server", tool="this tool", client=_YOUR_CLIENT, request="call")
        or reason.replace("_", " ")
    )
    suffix = f"; decision {decision_id}" if decision_id else ""
    return AccessDenied(f"access denied: {text} (reason: {reason}{suffix})", reason=reason, decision_id=decision_id)


@dataclass(frozen=True)
class _Plan:
    signature: inspect.Signature
    caller_parameters: tuple[str, ...]
    resource_parameters: tuple[tuple[str, type], ...]  # (name, resource type)
    context_parameter: str
    tool_wants_context: bool
    arguments: tuple[str, ...]  # the tool's own arguments (its input schema)


def _plan(spec: ToolSpec, access: Guard | Public, resource_types: Iterable[type]) -> _Plan:
    try:
        signature = inspect.signature(spec.fn, eval_str=True)
    except (NameError, TypeError) as exc:
        raise GuardError(f"tool {spec.name!r}: cannot resolve its annotations ({exc})") from None
    callers = tuple(name for name, p in signature.parameters.items() if p.annotation is Caller)
    if len(callers) > 1:
        raise GuardError(f"tool {spec.name!r} declares more than one Caller parameter: {', '.join(callers)}")
    types = tuple(resource_types)
    resources = tuple(
        (name, kind) for name, p in signature.parameters.items() if (kind := resource_type(p.annotation, types))
    )
    injected = {*callers, *(name for name, _ in resources)}
    context = find_context_parameter(spec.fn)
    if isinstance(access, Guard):
        reserved = {*injected, *([context] if context else [])}
        clash = [name for name in (*access.arguments, *access.property_arguments) if name in reserved]
        if clash:
            raise GuardError(f"tool {spec.name!r}: the guard reads {', '.join(clash)}, which is not a tool argument")
    parameters = [p for p in signature.parameters.values() if p.name not in injected]
    arguments = tuple(p.name for p in parameters if p.name != context)
    reserved_names = [name for name in (_CONTEXT_PARAMETER, _CONFIRMATION_PARAMETER) if name in signature.parameters]
    if reserved_names:
        raise GuardError(f"tool {spec.name!r}: the parameter name {reserved_names[0]!r} is reserved")
    if context is None:
        parameters.append(
            inspect.Parameter(_CONTEXT_PARAMETER, inspect.Parameter.KEYWORD_ONLY, annotation=Context, default=None)
        )
    return _Plan(
        signature.replace(parameters=parameters),
        callers,
        resources,
        context or _CONTEXT_PARAMETER,
        context is not None,
        arguments,
    )


async def _decide(
    runtime: ToolRuntime, guard: Guard, spec: ToolSpec, caller: Caller, kwargs: dict[str, Any]
) -> Verdict:
    try:
        inputs = guard.policy_inputs(kwargs)
    except Exception:
        logger.exception("guard of %s failed to compute its policy inputs; denied", spec.name)
        return Verdict(False, GUARD_FAILED)
    verdict = await runtime.authorizer.check(caller, Check(spec.name, guard.action, inputs))
    if verdict.reason not in (AUTHZ_UNAVAILABLE, AUTHZ_ERROR):
        runtime.metrics.observe_decision(verdict.allowed, verdict.cached)
    return verdict


def _fields(runtime: ToolRuntime, spec: ToolSpec, caller: Caller | None) -> dict[str, Any]:
    fields = {"server": runtime.server, "tool": spec.name}
    if caller is not None:
        fields |= {"user": caller.user, "client_id": caller.client_id, "edge_decision_id": caller.decision_id}
        fields |= {"request_id": caller.request_id}
    return {key: value for key, value in fields.items() if value}


async def _authorize(
    runtime: ToolRuntime, guard: Guard | None, spec: ToolSpec, caller: Caller | None, kwargs: dict[str, Any]
) -> Verdict:
    if caller is None:
        return Verdict(False, UNAUTHENTICATED)
    if guard is None:
        return Verdict(True, "public")
    return await _decide(runtime, guard, spec, caller, kwargs)


def _refuse(runtime: ToolRuntime, spec: ToolSpec, log: dict[str, Any], started: float, error: Exception) -> Exception:
    """Count and log a call that did not run; returns the error to raise."""
    elapsed = time.perf_counter() - started
    reason = getattr(error, "reason", "denied")
    runtime.metrics.observe_call(spec.name, elapsed, denied_reason=reason)
    logger.info("tool call denied", extra={"kit": {**log, "outcome": "denied", "reason": reason, "ms": elapsed * 1000}})
    return error


def _confirmation_resolver(
    spec: ToolSpec, guard: Guard | None, runtime: ToolRuntime, plan: _Plan
) -> Callable[..., Awaitable[Any]]:
    """The SDK resolver that fills a mutating tool's confirmation: policy first (never ask a person to confirm a
    call the policy denies), then the question, or the policy's waiver when the client cannot ask.
    """
    description = spec.description or spec.fn.__doc__ or ""

    async def confirm(**kwargs: Any) -> Any:
        started = time.perf_counter()
        ctx = kwargs.pop(_CONTEXT_PARAMETER)
        caller = _caller_of(ctx)
        fields = _fields(runtime, spec, caller)
        with bound_log_fields(**fields):
            verdict = await _authorize(runtime, guard, spec, caller, kwargs)
            log = {**fields, "decision_id": verdict.decision_id, "reason": verdict.reason, "cache": verdict.cached}
            if not verdict.allowed:
                raise _refuse(runtime, spec, log, started, denial(verdict.reason, verdict.decision_id))
            if can_elicit(ctx):
                return Elicit(confirmation_message(runtime.server, spec.name, description, kwargs), Confirmation)
            assert caller is not None
            inputs = guard.policy_inputs(kwargs) if guard is not None else {}
            waiver = await runtime.authorizer.check(caller, Check(spec.name, WAIVE_ACTION, inputs))
            if waiver.allowed:
                return Waived(waiver.decision_id)
            log |= {"decision_id": waiver.decision_id}
            refusal = NotConfirmed(
                denial(CONFIRMATION_REQUIRED, waiver.decision_id).args[0],
                reason=CONFIRMATION_REQUIRED,
                decision_id=waiver.decision_id,
            )
            raise _refuse(runtime, spec, log, started, refusal)

    parameters = [inspect.Parameter(_CONTEXT_PARAMETER, inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in plan.arguments]
    confirm.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    confirm.__annotations__ = {_CONTEXT_PARAMETER: Context}
    # The resolver's wire key in the multi-round state is its module and qualified name: one per tool.
    confirm.__module__ = "portcullis"
    confirm.__qualname__ = f"confirm.{spec.name}"
    return confirm


def build_tool(
    spec: ToolSpec, access: Guard | Public, runtime: ToolRuntime, resource_types: Iterable[type] = ()
) -> Callable[..., Awaitable[Any]]:
    """The function registered with the SDK for `spec`; parameters typed with one of `resource_types` receive
    the open resource.

    Raises:
        GuardError: the tool's annotations cannot be resolved, it declares two `Caller` parameters, its guard
            reads a parameter that is not a tool argument, or it uses a reserved parameter name.
    """
    plan = _plan(spec, access, resource_types)
    guard = access if isinstance(access, Guard) else None
    is_async = inspect.iscoroutinefunction(spec.fn)
    runtime.metrics.tool_registered(spec.name)

    @functools.wraps(spec.fn)
    async def run(**kwargs: Any) -> Any:
        started = time.perf_counter()
        ctx = kwargs[plan.context_parameter] if plan.tool_wants_context else kwargs.pop(plan.context_parameter)
        confirmation = kwargs.pop(_CONFIRMATION_PARAMETER, None)
        caller = _caller_of(ctx)
        fields = _fields(runtime, spec, caller)
        with bound_log_fields(**fields):
            verdict = await _authorize(runtime, guard, spec, caller, kwargs)
            # The call's fields go on the kit's own records too, so they survive a handler that formats later.
            log = {**fields, "decision_id": verdict.decision_id, "reason": verdict.reason, "cache": verdict.cached}
            if not verdict.allowed:
                raise _refuse(runtime, spec, log, started, denial(verdict.reason, verdict.decision_id))
            if spec.mutating:
                try:
                    log["confirmation"] = require_confirmed(confirmation, spec.name)
                except NotConfirmed as exc:
                    raise _refuse(runtime, spec, log, started, exc) from None
            for name in plan.caller_parameters:
                kwargs[name] = caller
            for name, kind in plan.resource_parameters:
                kwargs[name] = runtime.resources.get(kind)
            try:
                if is_async:
                    result = await spec.fn(**kwargs)
                else:
                    result = await anyio.to_thread.run_sync(functools.partial(spec.fn, **kwargs))
            except Exception as exc:
                elapsed = time.perf_counter() - started
                runtime.metrics.observe_call(spec.name, elapsed, failed=True)
                failure = {**log, "outcome": "error", "error": type(exc).__name__, "ms": elapsed * 1000}
                logger.info("tool call failed", extra={"kit": failure})
                raise
            elapsed = time.perf_counter() - started
            runtime.metrics.observe_call(spec.name, elapsed)
            logger.info("tool call", extra={"kit": {**log, "outcome": "ok", "ms": elapsed * 1000}})
            return result

    signature = plan.signature
    if spec.mutating:
        resolver = _confirmation_resolver(spec, guard, runtime, plan)
        confirmation = inspect.Parameter(
            _CONFIRMATION_PARAMETER,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[ElicitationResult[Confirmation], Resolve(resolver)],
        )
        signature = signature.replace(parameters=[*signature.parameters.values(), confirmation])
    run.__signature__ = signature  # type: ignore[attr-defined]
    run.__annotations__ = {
        p.name: p.annotation for p in signature.parameters.values() if p.annotation is not inspect.Parameter.empty
    }
    if signature.return_annotation is not inspect.Signature.empty:
        run.__annotations__["return"] = signature.return_annotation
    return run


class ToolListFilter:
    """SDK middleware: `tools/list` answers only the tools this caller may call, decided in one batch.

    Public tools are always listed; guarded ones are asked with empty policy inputs (the call's arguments are
    not known yet); anything else, or any failure to decide, is left out.
    """

    def __init__(self, access: Mapping[str, Guard | Public], runtime: ToolRuntime):
        self._access = dict(access)
        self._runtime = runtime

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list":
            return result
        body = (
            result.model_dump(by_alias=True, mode="json", exclude_none=True)
            if isinstance(result, BaseModel)
            else result
        )
        if not isinstance(body, dict) or not isinstance(body.get("tools"), list):
            logger.warning("tools/list answered an unexpected shape; listing nothing")
            return {"tools": []}
        visible = await self._visible(caller_of_request(ctx.request), [tool.get("name") for tool in body["tools"]])
        return {**body, "tools": [tool for tool in body["tools"] if tool.get("name") in visible]}

    async def _visible(self, caller: Caller | None, names: list[Any]) -> set[str]:
        if caller is None:
            return set()
        visible = {name for name in names if isinstance(self._access.get(name), Public)}
        guarded = [(name, access) for name in names if isinstance(access := self._access.get(name), Guard)]
        if guarded:
            checks = [Check(name, access.action, {}) for name, access in guarded]
            verdicts = await self._runtime.authorizer.check_many(caller, checks)
            visible |= {name for (name, _), verdict in zip(guarded, verdicts, strict=True) if verdict.allowed}
        return visible
