"""The one decision function both layers call.

    DecisionRequest (actor, action, resource reference)
        -> policy input (actor facts + catalog facts of the resource)
        -> PolicySet.evaluate
        -> Decision (allow, reason, decision id, policy and catalog revisions, duration)

Any exception or timeout is a denial. Decisions are cached by exactly the inputs the policy reads plus
both revisions; the cache is dropped whenever either revision changes.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from authz_service.decision_log import DecisionSink
from authz_service.metrics import Metrics
from authz_service.policy import PolicyEngine, PolicySet
from portcullis_contracts.catalog import Catalog

__all__ = ["Actor", "Decider", "Decision", "DecisionRequest", "Layer", "ResourceRef", "decision_record"]

Layer = Literal["edge", "server", "cli"]
ResourceType = Literal["server", "tool", "dataset", "registry_entry"]
logger = logging.getLogger("portcullis.authz.decision")


@dataclass(frozen=True)
class Actor:
    """Who asks: the user's identity claims and the client application acting for them."""

    id: str
    client: str
    email: str = ""
    groups: tuple[str, ...] = ()
    business_groups: tuple[str, ...] = ()

    def fact(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "client": self.client,
            "groups": list(self.groups),
            "business_groups": list(self.business_groups),
        }

    def log_view(self) -> dict[str, Any]:
        """What the decision log keeps of the actor: identity claims, never a token."""
        return self.fact()


@dataclass(frozen=True)
class ResourceRef:
    """What is asked about: a server, one of its tools, a dataset it serves, or its registry entry.

    `properties` are the selected attributes the caller passes (tool arguments the policy needs, a dataset's
    partition or owners); they become part of the cache key. A dataset's labels are never among them: the
    decision reads those from the catalog.
    """

    type: ResourceType
    server: str
    name: str = ""
    properties: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(
        cls, type: ResourceType, server: str, name: str = "", properties: Mapping[str, Any] | None = None
    ) -> ResourceRef:
        return cls(type, server, name, _freeze(properties or {}))

    def log_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {"type": self.type, "server": self.server}
        if self.name:
            view["name"] = self.name
        if self.properties:
            view["properties"] = _thaw(self.properties)
        return view


@dataclass(frozen=True)
class DecisionRequest:
    layer: Layer
    actor: Actor
    action: str
    resource: ResourceRef
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The answer, with everything needed to audit it later."""

    allowed: bool
    reason: str
    decision_id: str
    policy_revision: str
    catalog_revision: str
    duration_ms: float
    shadow: bool = False  # allowed only because shadow mode turned a deny into "would deny"
    cached: bool = False

    @property
    def result(self) -> str:
        if self.shadow:
            return "would_deny"
        return "allow" if self.allowed else "deny"


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("__list__", *(_freeze(v) for v in value))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        if value and value[0] == "__list__":
            return [_thaw(v) for v in value[1:]]
        return {k: _thaw(v) for k, v in value}
    return value


class _IdSource:
    """Decision ids: a random per-process prefix and a counter; unique without a syscall per decision."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"


class Decider:
    """Evaluates decision requests against the current policy set and catalog."""

    def __init__(
        self,
        *,
        engine: PolicyEngine,
        catalog: Callable[[], Catalog],
        log: DecisionSink,
        metrics: Metrics,
        cache_size: int,
        shadow_mode: bool = False,
        shadow_servers: frozenset[str] = frozenset(),
    ):
        self._engine = engine
        self._catalog = catalog
        self._log = log
        self._metrics = metrics
        self._cache_size = cache_size
        self._cache: dict[tuple[Any, ...], tuple[bool, str]] = {}
        self._cache_revisions: tuple[str, str] = ("", "")
        self._shadow_mode = shadow_mode
        self._shadow_servers = shadow_servers
        self._new_id = _IdSource()
        # The gRPC adapter decides on a thread pool; the lock guards only the cache's dict operations.
        self._lock = threading.Lock()

    def decide(self, request: DecisionRequest) -> Decision:
        """Decide, log and count one request. Never raises: a failure is a denial."""
        started = time.perf_counter()
        policy = self._engine.current
        catalog = self._catalog()
        policy_revision = policy.revision if policy else "none"
        cached = False
        try:
            if policy is None:
                allowed, reason = False, "policy_not_loaded"
            else:
                revisions = (policy_revision, catalog.revision)
                actor, resource = request.actor, request.resource
                key = (
                    actor.id, actor.client, actor.email, actor.groups, actor.business_groups,
                    request.action, resource.type, resource.server, resource.name, resource.properties,
                    *revisions,
                )  # fmt: skip
                with self._lock:
                    if revisions != self._cache_revisions:
                        self._cache.clear()  # a reload: nothing cached under the old revisions is useful
                        self._cache_revisions = revisions
                    hit = self._cache.get(key)
                if hit is not None:
                    allowed, reason = hit
                    cached = True
                else:
                    allowed, reason = self._evaluate(request, catalog, policy)
                    if self._cache_size:
                        with self._lock:
                            while len(self._cache) >= self._cache_size:
                                del self._cache[next(iter(self._cache))]
                            self._cache[key] = (allowed, reason)
        except Exception as exc:
            allowed = False
            reason = "evaluation_timeout" if "timeout" in str(exc).lower() else "evaluation_error"
            self._metrics.errors.labels(stage="evaluate").inc()
            logger.warning("evaluation failed, denied (%s): %s", reason, str(exc).split("\n", 1)[0])
        shadow = not allowed and (self._shadow_mode or request.resource.server in self._shadow_servers)
        duration = time.perf_counter() - started
        decision = Decision(
            allowed=allowed or shadow,
            reason=reason,
            decision_id=self._new_id(),
            policy_revision=policy_revision,
            catalog_revision=catalog.revision,
            duration_ms=duration * 1000,
            shadow=shadow,
            cached=cached,
        )
        self._metrics.observe_decision(request.layer, decision.result, duration, cached)
        self._log.submit((request, decision, time.time()))
        return decision

    def _evaluate(self, request: DecisionRequest, catalog: Catalog, policy: PolicySet) -> tuple[bool, str]:
        ref = request.resource
        if ref.type == "registry_entry":
            # A registry entry is decided on the facts the registry sends (it may not be in the catalog yet).
            entry = dict(_thaw(ref.properties)) if ref.properties else {}
            return policy.evaluate(
                request.actor.fact(), request.action, {**entry, "kind": "registry_entry", "name": ref.server}
            )
        server = catalog.server_fact(ref.server)
        if server is None:
            return False, "unknown_server"
        resource: dict[str, Any]
        if ref.type == "server":
            resource = server
        elif ref.type == "tool":
            tool = catalog.tool_fact(ref.server, ref.name)
            if tool is None:
                return False, "unknown_tool"
            resource = dict(tool, arguments=_thaw(ref.properties)) if ref.properties else dict(tool, arguments={})
        else:
            properties = _thaw(ref.properties) if ref.properties else {}
            # The labels are the catalog's (reviewed with the server), never what the asking server sends.
            business_group, sensitivity = catalog.dataset_labels(ref.server, ref.name)
            resource = {
                "kind": "dataset",
                "name": ref.name,
                "server": server,
                "business_group": business_group,
                "sensitivity": sensitivity,
                "properties": properties,
            }
        return policy.evaluate(request.actor.fact(), request.action, resource)


def decision_record(item: tuple[DecisionRequest, Decision, float]) -> dict[str, Any]:
    """The decision-log line of one decision; built on the log's writer thread, off the hot path."""
    request, decision, timestamp = item
    record: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "time": timestamp,
        "layer": request.layer,
        "actor": request.actor.log_view(),
        "action": request.action,
        "resource": request.resource.log_view(),
        "result": decision.result,
        "reason": decision.reason,
        "policy_revision": decision.policy_revision,
        "catalog_revision": decision.catalog_revision,
        "latency_ms": round(decision.duration_ms, 4),
        "cached": decision.cached,
    }
    if request.context:
        record["context"] = dict(request.context)
    return record
