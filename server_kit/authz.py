"""The kit as an AuthZEN client of authz_service (layer 2: "may this user call this tool with these arguments?").

Fails closed: a timeout, an unreachable service, a non-200 answer or a malformed one is a denial with a kit
reason code (`authz_unavailable`, `authz_error`), never an allow and never an exception. Decisions the policy
made (allow or deny) are cached for a few seconds, keyed by the caller's facts, the action, the tool and the
policy inputs; failures are never cached, so recovery is immediate. The wire (bodies, answers, the HTTP exchange)
is `portcullis_contracts.authzen`, shared with the registry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pydantic_core

from portcullis_contracts.authzen import (
    AUTHZ_ERROR,
    AUTHZ_UNAVAILABLE,
    MAX_BATCH,
    AsyncAuthzenClient,
    AuthzenFailure,
    Item,
    Verdict,
)
from server_kit.caller import Caller

__all__ = ["AUTHZ_ERROR", "AUTHZ_UNAVAILABLE", "Authorizer", "Check", "Verdict"]


@dataclass(frozen=True)
class Check:
    """One question: the action on one tool (with the policy inputs read from the call's arguments), or on one
    dataset the server serves (`kind="dataset"`, `inputs` = its labels and properties).
    """

    tool: str
    action: str
    inputs: Mapping[str, Any]
    kind: Literal["tool", "dataset"] = "tool"


_CacheKey = tuple[Any, ...]


class Authorizer:
    """Asks `/access/v1/evaluation(s)` with this server's service credential, with a short-TTL cache."""

    def __init__(
        self,
        *,
        server: str,
        url: str,
        credential: str,
        timeout_seconds: float,
        cache_ttl_seconds: float,
        cache_size: int = 10_000,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._server = server
        self._http = http or httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_seconds)
        self._owns_http = http is None
        self._client = AsyncAuthzenClient(self._http, credential=credential)
        self._ttl = cache_ttl_seconds
        self._size = cache_size
        self._clock = clock
        self._cache: dict[_CacheKey, tuple[Verdict, float]] = {}

    async def aclose(self) -> None:
        """Close the HTTP client when the authorizer made it."""
        if self._owns_http:
            await self._http.aclose()

    def _resource(self, check: Check) -> dict[str, Any]:
        inputs = pydantic_core.to_jsonable_python(dict(check.inputs), fallback=str)
        if check.kind == "dataset":
            return {"type": "dataset", "id": check.tool, "properties": {**inputs, "server": self._server}}
        return {"type": "tool", "id": check.tool, "properties": {"server": self._server, "arguments": inputs}}

    def _key(self, caller: Caller, check: Check, resource: dict[str, Any]) -> _CacheKey:
        inputs = json.dumps(resource["properties"], sort_keys=True, separators=(",", ":"))
        return (caller.cache_key, check.kind, check.action, check.tool, inputs)

    def _cached(self, key: _CacheKey) -> Verdict | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if self._clock() >= entry[1]:
            del self._cache[key]
            return None
        return Verdict(entry[0].allowed, entry[0].reason, entry[0].decision_id, cached=True)

    def _remember(self, key: _CacheKey, verdict: Verdict) -> None:
        if self._ttl <= 0 or self._size <= 0 or verdict.failed:
            return
        if len(self._cache) >= self._size:
            # Oldest first (dicts keep insertion order): drop a tenth rather than one entry per insert.
            for stale in list(self._cache)[: max(1, self._size // 10)]:
                del self._cache[stale]
        self._cache[key] = (verdict, self._clock() + self._ttl)

    async def check(self, caller: Caller, check: Check) -> Verdict:
        """The decision for one tool call. Never raises: a failure to decide is a denial."""
        return (await self.check_many(caller, [check]))[0]

    async def check_many(self, caller: Caller, checks: Sequence[Check]) -> list[Verdict]:
        """Decisions for many checks of one caller, in order; the cache misses go in ONE batch request
        (`/access/v1/evaluations`), or `/access/v1/evaluation` when only one misses. Never raises.
        """
        resources = [self._resource(check) for check in checks]
        keys = [self._key(caller, check, resource) for check, resource in zip(checks, resources, strict=True)]
        verdicts: list[Verdict | None] = [self._cached(key) for key in keys]
        missing = [i for i, verdict in enumerate(verdicts) if verdict is None]
        if missing:
            fresh = await self._ask(caller, [(checks[i].action, resources[i]) for i in missing])
            for i, verdict in zip(missing, fresh, strict=True):
                verdicts[i] = verdict
                self._remember(keys[i], verdict)
        return [verdict for verdict in verdicts if verdict is not None]

    async def _ask(self, caller: Caller, items: list[Item]) -> list[Verdict]:
        context = {"edge_decision_id": caller.decision_id, "request_id": caller.request_id}
        context = {key: value for key, value in context.items() if value}
        if len(items) == 1:
            action, resource = items[0]
            try:
                return [await self._client.evaluate(caller.subject, action, resource, context)]
            except AuthzenFailure as failure:
                return [Verdict(False, failure.reason)]
        verdicts: list[Verdict] = []
        for start in range(0, len(items), MAX_BATCH):
            # One request per chunk: a chunk that cannot be decided denies its own questions only.
            chunk = items[start : start + MAX_BATCH]
            try:
                verdicts += await self._client.evaluate_many(caller.subject, chunk, context)
            except AuthzenFailure as failure:
                verdicts += [Verdict(False, failure.reason)] * len(chunk)
        return verdicts
