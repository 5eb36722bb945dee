"""The kit as an AuthZEN client of authz_service (layer 2: "may this user call this tool with these arguments?").

Fails closed: a timeout, an unreachable service, a non-200 answer or a malformed one is a denial with a kit
reason code (`authz_unavailable`, `authz_error`), never an allow and never an exception. Decisions the policy
made (allow or deny) are cached for a few seconds, keyed by the caller's facts, the action, the tool and the
policy inputs; failures are never cached, so recovery is immediate.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pydantic_core

from server_kit.caller import Caller

__all__ = ["AUTHZ_ERROR", "AUTHZ_UNAVAILABLE", "Authorizer", "Check", "Verdict"]

logger = logging.getLogger("portcullis.kit.authz")
AUTHZ_UNAVAILABLE = "authz_unavailable"
AUTHZ_ERROR = "authz_error"
_MAX_BATCH = 1_000  # the AuthZEN API's limit per request


@dataclass(frozen=True)
class Verdict:
    """One decision: allowed or not, the reason code, the decision id, and whether it came from the cache."""

    allowed: bool
    reason: str
    decision_id: str = ""
    cached: bool = False


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
        self._headers = {"Authorization": f"Bearer {credential}"}
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
        if self._ttl <= 0 or self._size <= 0 or verdict.reason in (AUTHZ_UNAVAILABLE, AUTHZ_ERROR):
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

    async def _ask(self, caller: Caller, items: list[tuple[str, dict[str, Any]]]) -> list[Verdict]:
        context = {"edge_decision_id": caller.decision_id, "request_id": caller.request_id}
        context = {key: value for key, value in context.items() if value}
        if len(items) == 1:
            action, resource = items[0]
            body: dict[str, Any] = {
                "subject": caller.subject,
                "action": {"name": action},
                "resource": resource,
                "context": context,
            }
            try:
                return [_verdict(await self._post("/access/v1/evaluation", body))]
            except _Failed as failed:
                return [_failure(failed.reason)]
        verdicts: list[Verdict] = []
        for start in range(0, len(items), _MAX_BATCH):
            chunk = items[start : start + _MAX_BATCH]
            body = {
                "subject": caller.subject,
                "context": context,
                "evaluations": [{"action": {"name": action}, "resource": resource} for action, resource in chunk],
            }
            try:
                results = (await self._post("/access/v1/evaluations", body)).get("evaluations")
                if not isinstance(results, list) or len(results) != len(chunk):
                    logger.warning("authz_service gave a malformed batch answer; denied")
                    raise _Failed(AUTHZ_ERROR)
                verdicts += [_verdict(result) for result in results]
            except _Failed as failed:
                verdicts += [_failure(failed.reason)] * len(chunk)
        return verdicts

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON object answered.

        Raises:
            _Failed: unreachable or timed out (`authz_unavailable`), refused us or answered garbage (`authz_error`).
        """
        try:
            response = await self._http.post(path, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            logger.warning("authz_service unreachable (%s); denied", type(exc).__name__)
            raise _Failed(AUTHZ_UNAVAILABLE) from None
        if response.status_code != 200:
            logger.warning("authz_service answered %s on %s; denied", response.status_code, path)
            raise _Failed(AUTHZ_UNAVAILABLE if response.status_code >= 500 else AUTHZ_ERROR)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            logger.warning("authz_service answered something other than a JSON object; denied")
            raise _Failed(AUTHZ_ERROR)
        return payload


class _Failed(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _failure(reason: str) -> Verdict:
    return Verdict(False, reason)


def _verdict(result: Any) -> Verdict:
    if not isinstance(result, dict) or not isinstance(result.get("decision"), bool):
        logger.warning("authz_service gave a malformed decision; denied")
        return _failure(AUTHZ_ERROR)
    context = result.get("context")
    context = context if isinstance(context, dict) else {}
    allowed: bool = result["decision"]
    reason = str(context.get("reason") or ("allowed" if allowed else "no_reason_given"))
    return Verdict(allowed, reason, str(context.get("id", "")))
