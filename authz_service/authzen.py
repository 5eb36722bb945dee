"""The server-side adapter: the AuthZEN 1.0 Access Evaluation API that MCP servers call.

    POST /access/v1/evaluation    one (subject, action, resource, context) -> {"decision": bool, "context": ...}
    POST /access/v1/evaluations   a batch sharing defaults, with an evaluation semantic

Callers are services and authenticate with a bearer service credential; anyone else gets 401. Each credential
speaks for its owner only (`credentials.ServiceCredentials`): a server's credential may ask about
its own server, its tools and its datasets, and the registry's (owner `registry`) about registry entries and the
servers and tools of the per-caller listing it serves; anything else is 403. A dataset's labels (business group,
sensitivity) are never taken from the request: the decision reads them from the catalog.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from authz_service.credentials import ServiceCredentials
from authz_service.decision import Actor, Decider, Decision, DecisionRequest, ResourceRef
from authz_service.errors import AuthzError
from authz_service.settings import Settings
from portcullis_contracts.http_input import BodyTooLarge, read_limited
from portcullis_contracts.json_input import InvalidJson, parse_json
from portcullis_contracts.problems import validation_problems

__all__ = ["REGISTRY_OWNER", "AuthzenError", "authzen_configuration", "build_router", "may_ask"]

_RESOURCE_TYPES = {"server", "tool", "dataset", "registry_entry"}
# How deep a request body may nest: tool arguments reach the policy engine, whose serializer stops at 128 levels,
# and the decision cache freezes them recursively.
_MAX_JSON_DEPTH = 32
REGISTRY_OWNER = "registry"
# The dataset labels the decision reads from the catalog; a caller's copy is dropped, never decided on.
_CATALOG_LABELS = ("business_group", "sensitivity")
# What the registry asks besides its own entries: the per-caller listing (may this person reach each server and
# call each of its tools).
_REGISTRY_LISTING = {("server", "connect"), ("tool", "call")}


class AuthzenError(AuthzError):
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
            for label in _CATALOG_LABELS:
                properties.pop(label, None)
            ref = ResourceRef.of("dataset", server, resource.id, properties)
    log_context = {key: str(value) for key, value in context.items() if key in ("edge_decision_id", "request_id")}
    return DecisionRequest("server", actor, action.name, ref, log_context)


def may_ask(owner: str, request: DecisionRequest) -> bool:
    """Whether the service whose credential is `owner`'s may ask this question."""
    resource = request.resource
    if owner == REGISTRY_OWNER:
        if resource.type == "registry_entry":
            return request.action.startswith("registry.")
        return (resource.type, request.action) in _REGISTRY_LISTING
    return resource.type in ("server", "tool", "dataset") and resource.server == owner


def _bound(owner: str, request: DecisionRequest) -> DecisionRequest:
    if not may_ask(owner, request):
        ref = request.resource
        about = f"registry entry {ref.server}" if ref.type == "registry_entry" else f"server {ref.server}"
        raise AuthzenError(
            403, f"the credential of {owner} may not ask about {request.action} on {ref.type} of {about}"
        )
    return request


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
    fixed = {owner: secret.get_secret_value() for owner, secret in settings.service_credentials.items()}
    credentials = ServiceCredentials(fixed, settings.service_credentials_dir)

    def authenticate(request: Request) -> None:
        owner = credentials.owner(request.headers.get("authorization"))
        if owner is None:
            raise AuthzenError(
                401, "a service credential is required", {"WWW-Authenticate": 'Bearer realm="portcullis-authzen"'}
            )
        request.state.authzen_owner = owner

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
        owner: str = http_request.state.authzen_owner
        request = _parse(EvaluationRequest, await read_json(http_request))
        question = _to_request(request.subject, request.action, request.resource, request.context)
        decision = decider.decide(_bound(owner, question))
        return JSONResponse(_result(decision))

    @router.post("/access/v1/evaluations")
    async def evaluations(http_request: Request) -> JSONResponse:
        owner: str = http_request.state.authzen_owner
        batch = _parse(EvaluationsRequest, await read_json(http_request))
        items = batch.evaluations or [_PartialEvaluation()]
        # Every question is checked against the credential before any is decided: one out of bounds refuses all.
        questions: list[DecisionRequest] = []
        for item in items:
            subject, action, resource = (
                item.subject or batch.subject,
                item.action or batch.action,
                item.resource or batch.resource,
            )
            if subject is None or action is None or resource is None:
                raise AuthzenError(400, "every evaluation needs a subject, an action and a resource (own or default)")
            context = {**batch.context, **(item.context or {})}
            questions.append(_bound(owner, _to_request(subject, action, resource, context)))
        results: list[dict[str, Any]] = []
        semantic = batch.options.evaluations_semantic
        for question in questions:
            decision = decider.decide(question)
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
        problems = validation_problems(exc.errors(), limit=10, root="body")
        raise AuthzenError(400, f"invalid AuthZEN request: {problems}") from None
