"""The registry as an AuthZEN client of authz_service: who may publish, review, approve or retire.

Fails closed: an unreachable service or an unexpected answer is `AuthzUnavailable`, never an allow.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from registry.errors import AuthzUnavailable
from registry.identity import Caller

__all__ = ["AuthzClient", "HttpClient", "Verdict"]

logger = logging.getLogger("portcullis.registry.authz")
_BATCH = 200  # evaluations per HTTP request


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    decision_id: str


def subject(caller: Caller) -> dict[str, Any]:
    return {
        "type": "user",
        "id": caller.id,
        "properties": {
            "email": caller.email,
            "client_id": caller.client,
            "groups": list(caller.groups),
            "business_groups": list(caller.business_groups),
        },
    }


class HttpClient(Protocol):
    """What the client needs of an HTTP client: `httpx.Client`, or Starlette's TestClient in unit tests."""

    def post(self, url: str, *, json: Any, headers: dict[str, str]) -> Any: ...


class AuthzClient:
    """Asks `/access/v1/evaluation(s)` with the registry's service credential."""

    def __init__(self, http: HttpClient, *, credential: str):
        self._http = http
        self._headers = {"Authorization": f"Bearer {credential}"}

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            logger.warning("authz_service unreachable: %s", type(exc).__name__)
            raise AuthzUnavailable("the authorization service is unavailable; nothing was changed") from None
        if response.status_code != 200:
            logger.warning("authz_service answered %s on %s", response.status_code, path)
            raise AuthzUnavailable(f"the authorization service answered {response.status_code}; nothing was changed")
        payload = response.json()
        if not isinstance(payload, dict):
            raise AuthzUnavailable("the authorization service gave an unexpected answer")
        return payload

    @staticmethod
    def _verdict(result: Any) -> Verdict:
        if not isinstance(result, dict) or not isinstance(result.get("decision"), bool):
            raise AuthzUnavailable("the authorization service gave an unexpected answer")
        context = result.get("context") or {}
        return Verdict(result["decision"], str(context.get("reason", "")), str(context.get("id", "")))

    def evaluate(self, caller: Caller, action: str, resource: dict[str, Any]) -> Verdict:
        """One decision for (caller, action, resource)."""
        body = {"subject": subject(caller), "action": {"name": action}, "resource": resource}
        return self._verdict(self._post("/access/v1/evaluation", body))

    def evaluate_many(self, caller: Caller, items: Sequence[tuple[str, dict[str, Any]]]) -> list[Verdict]:
        """Decisions for many (action, resource) pairs of one caller, in order (batched evaluations)."""
        verdicts: list[Verdict] = []
        for start in range(0, len(items), _BATCH):
            chunk = items[start : start + _BATCH]
            body = {
                "subject": subject(caller),
                "evaluations": [{"action": {"name": action}, "resource": resource} for action, resource in chunk],
            }
            results = self._post("/access/v1/evaluations", body).get("evaluations")
            if not isinstance(results, list) or len(results) != len(chunk):
                raise AuthzUnavailable("the authorization service gave an unexpected answer")
            verdicts.extend(self._verdict(result) for result in results)
        return verdicts
