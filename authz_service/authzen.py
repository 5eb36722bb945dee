"""The server-side adapter: the AuthZEN 1.0 Access Evaluation API that MCP servers call.

    POST /access/v1/evaluation    one (subject, action, resource, context) -> {"decision": bool, "context": ...}
    POST /access/v1/evaluations   a batch sharing defaults, with an evaluation semantic

Callers are services and authenticate with a bearer service credential; anyone else gets 401.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from authz_service.decision import Actor, Decider, Decision, DecisionRequest, ResourceRef
from authz_service.http_input import BodyTooLarge, bearer_matches, read_limited
from authz_service.json_input import InvalidJson, parse_json
from authz_service.settings import Settings

__all__ = ["AuthzenError", "authzen_configuration", "build_router"]

_RESOURCE_TYPES = {"server", "tool", "dataset", "registry_entry"}
# How deep a request body may nest: tool arguments reach the policy engine, whose serializer stops at 128 levels,
# and the decision cache freezes them recursively.
_MAX_JSON_DEPTH = 32


class AuthzenError(Exception):
    """A request error, mapped to an HTTP status in one place (`create_app`)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class _Entity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=64)
    id: str = Field(min_length=1, max_length=256)
    properties: dict[str, Any] = Field(default_factory=dict)


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    properties: dict[str, Any] = Field(default_factory=dict)


class EvaluationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: _Entity
    action: _Action
    resource: _Entity
    context: dict[str, Any] = Field(default_factory=dict)


class _PartialEvaluation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: _Entity | None = None
    action: _Action | None = None
    resource: _Entity | None = None
    context: dict[str, Any] | None = None


class _Options(BaseModel):
    model_config = ConfigDict(extra="allow")
    evaluations_semantic: Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"] = "execute_all"


class EvaluationsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: _Entity | None = None
    action: _Action | None = None
    resource: _Entity | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    evaluations: list[_PartialEvaluation] = Field(default_factory=list, max_length=1000)
    options: _Options = Field(default_factory=_Options)


def authzen_configuration(base_url: str) -> dict[str, str]:
    """The `/.well-known/authzen-configuration` metadata document."""
    return {
        "policy_decision_point": base_url,
        "access_evaluation_endpoint": f"{base_url}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{base_url}/access/v1/evaluations",
    }


def _strings(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AuthzenError(400, f"subject.properties.{field} must be a list of strings")
    return tuple(sorted(value))


def _to_request(subject: _Entity, action: _Action, resource: _Entity, context: dict[str, Any]) -> DecisionRequest:
    if subject.type != "user":
        raise AuthzenError(400, "subject.type must be 'user'")
    props = subject.properties
    actor = Actor(
        id=subject.id,
        client=str(props.get("client_id", "")),
        email=str(props.get("email", "")),
        groups=_strings(props.get("groups"), "groups"),
        business_groups=_strings(props.get("business_groups"), "business_groups"),
    )
    if resource.type not in _RESOURCE_TYPES:
        raise AuthzenError(400, f"resource.type must be one of {sorted(_RESOURCE_TYPES)}")
    properties = dict(resource.properties)
    if resource.type == "server":
        ref = ResourceRef.of("server", resource.id)
    elif resource.type == "registry_entry":
        ref = ResourceRef.of("registry_entry", resource.id, "", properties)
    else:
        server = properties.pop("server", None)
        if not isinstance(server, str) or not server:
            raise AuthzenError(400, f"resource.properties.server is required for a {resource.type}")
        if resource.type == "tool":
            arguments = properties.get("arguments", {})
            if not isinstance(arguments, dict):
                raise AuthzenError(400, "resource.properties.arguments must be an object")
            ref = ResourceRef.of("tool", server, resource.id, arguments)
        else:
            ref = ResourceRef.of("dataset", server, resource.id, properties)
    log_context = {key: str(value) for key, value in context.items() if key in ("edge_decision_id", "request_id")}
    return DecisionRequest("server", actor, action.name, ref, log_context)


def _result(decision: Decision) -> dict[str, Any]:
    context: dict[str, Any] = {
        "id": decision.decision_id,
        "reason": decision.reason,
        "policy_revision": decision.policy_revision,
        "catalog_revision": decision.catalog_revision,
    }
    if decision.shadow:
        context["shadow"] = "would_deny"
    return {"decision": decision.allowed, "context": context}


def build_router(settings: Settings, decider: Decider) -> APIRouter:
    """The AuthZEN routes, bound to one decider and the service credentials in `settings`."""
    secrets = list(settings.service_credentials.values())

    def authenticate(request: Request) -> None:
        if not bearer_matches(request.headers.get("authorization"), secrets):
            raise AuthzenError(
                401, "a service credential is required", {"WWW-Authenticate": 'Bearer realm="portcullis-authzen"'}
            )

    async def read_json(request: Request) -> Any:
        try:
            body = await read_limited(request, settings.max_body_bytes)
        except BodyTooLarge as exc:
            raise AuthzenError(413, str(exc)) from None
        try:
            return parse_json(body, max_depth=_MAX_JSON_DEPTH)
        except InvalidJson as exc:
            raise AuthzenError(400, f"request body: {exc}") from None

    router = APIRouter(dependencies=[Depends(authenticate)])

    @router.post("/access/v1/evaluation")
    async def evaluation(http_request: Request) -> JSONResponse:
        request = _parse(EvaluationRequest, await read_json(http_request))
        decision = decider.decide(_to_request(request.subject, request.action, request.resource, request.context))
        return JSONResponse(_result(decision))

    @router.post("/access/v1/evaluations")
    async def evaluations(http_request: Request) -> JSONResponse:
        batch = _parse(EvaluationsRequest, await read_json(http_request))
        items = batch.evaluations or [_PartialEvaluation()]
        results: list[dict[str, Any]] = []
        semantic = batch.options.evaluations_semantic
        for item in items:
            subject, action, resource = (
                item.subject or batch.subject,
                item.action or batch.action,
                item.resource or batch.resource,
            )
            if subject is None or action is None or resource is None:
                raise AuthzenError(400, "every evaluation needs a subject, an action and a resource (own or default)")
            context = {**batch.context, **(item.context or {})}
            decision = decider.decide(_to_request(subject, action, resource, context))
            results.append(_result(decision))
            if (semantic == "deny_on_first_deny" and not decision.allowed) or (
                semantic == "permit_on_first_permit" and decision.allowed
            ):
                break
        return JSONResponse({"evaluations": results})

    return router


def _parse(model: type[EvaluationRequest] | type[EvaluationsRequest], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:10])
        raise AuthzenError(400, f"invalid AuthZEN request: {problems}") from None
