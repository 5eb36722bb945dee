"""AuthZEN 1.0 as the decision point's clients speak it: the request bodies, the answer, and one small client.

The registry (sync, "may this person publish?") and the server kit (async, "may this person call this tool?") ask
the decision point's `/access/v1/evaluation(s)` with their own service credential. Both build the same bodies and
read the same answers here, and both fail closed the same way: a decision that cannot be had is an
`AuthzenFailure` (reason `authz_unavailable` when the service cannot be reached or is failing, `authz_error` when
it refused the question or answered garbage), never an allow. A malformed decision inside a batch denies that one
question (a `Verdict` whose `failed` is true), not its neighbours.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

__all__ = [
    "AUTHZ_ERROR",
    "AUTHZ_UNAVAILABLE",
    "EVALUATIONS_PATH",
    "EVALUATION_PATH",
    "MAX_BATCH",
    "Item",
    "AsyncAuthzenClient",
    "AuthzenClient",
    "AuthzenFailure",
    "Verdict",
    "evaluation_request",
    "evaluations_request",
]

logger = logging.getLogger("portcullis.authzen")
EVALUATION_PATH = "/access/v1/evaluation"
EVALUATIONS_PATH = "/access/v1/evaluations"
MAX_BATCH = 1_000  # the decision point's limit of evaluations per request
# Reason codes of a decision that could not be had (a client's own, never a policy's).
AUTHZ_UNAVAILABLE = "authz_unavailable"
AUTHZ_ERROR = "authz_error"

Item = tuple[str, Mapping[str, Any]]  # (action name, resource)


@dataclass(frozen=True)
class Verdict:
    """One decision: allowed or not, the reason code, the decision id, and whether it came from a cache."""

    allowed: bool
    reason: str
    decision_id: str = ""
    cached: bool = False

    @property
    def failed(self) -> bool:
        """No decision was had (the service unavailable or its answer unusable): denied, and never to be cached."""
        return not self.allowed and self.reason in (AUTHZ_UNAVAILABLE, AUTHZ_ERROR)


class AuthzenFailure(Exception):
    """No decision could be had. `reason` is `authz_unavailable` or `authz_error`; `status` the HTTP status, if any."""

    def __init__(self, reason: str, message: str, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.status = status


def evaluation_request(
    subject: Mapping[str, Any], action: str, resource: Mapping[str, Any], context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The body of one `/access/v1/evaluation`."""
    body: dict[str, Any] = {"subject": subject, "action": {"name": action}, "resource": resource}
    if context is not None:
        body["context"] = context
    return body


def evaluations_request(
    subject: Mapping[str, Any], items: Sequence[Item], context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The body of one `/access/v1/evaluations`: one subject, many (action, resource) questions."""
    body: dict[str, Any] = {"subject": subject}
    if context is not None:
        body["context"] = context
    body["evaluations"] = [{"action": {"name": action}, "resource": resource} for action, resource in items]
    return body


def verdict_of(result: Any) -> Verdict:
    """The verdict in one AuthZEN decision object; a malformed one is a failed denial (`authz_error`)."""
    if not isinstance(result, dict) or not isinstance(result.get("decision"), bool):
        logger.warning("the decision point gave a malformed decision; denied")
        return Verdict(False, AUTHZ_ERROR)
    context = result.get("context")
    context = context if isinstance(context, dict) else {}
    allowed: bool = result["decision"]
    reason = str(context.get("reason") or ("allowed" if allowed else "no_reason_given"))
    return Verdict(allowed, reason, str(context.get("id", "")))


def _unreachable(exc: httpx.HTTPError) -> AuthzenFailure:
    logger.warning("the decision point is unreachable (%s); denied", type(exc).__name__)
    return AuthzenFailure(AUTHZ_UNAVAILABLE, "the authorization service is unavailable")


def _answer(response: httpx.Response, path: str) -> dict[str, Any]:
    """The JSON object a 200 carries.

    Raises:
        AuthzenFailure: any other status (5xx: unavailable; else: error), or a body that is not a JSON object.
    """
    if response.status_code != 200:
        logger.warning("the decision point answered %s on %s; denied", response.status_code, path)
        reason = AUTHZ_UNAVAILABLE if response.status_code >= 500 else AUTHZ_ERROR
        message = f"the authorization service answered {response.status_code}"
        raise AuthzenFailure(reason, message, response.status_code)
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        logger.warning("the decision point answered something other than a JSON object; denied")
        raise AuthzenFailure(AUTHZ_ERROR, "the authorization service gave an unexpected answer", 200)
    return payload


def _batch_verdicts(payload: dict[str, Any], expected: int) -> list[Verdict]:
    results = payload.get("evaluations")
    if not isinstance(results, list) or len(results) != expected:
        logger.warning("the decision point gave a malformed batch answer; denied")
        raise AuthzenFailure(AUTHZ_ERROR, "the authorization service gave an unexpected answer", 200)
    return [verdict_of(result) for result in results]


class SyncHttp(Protocol):
    """What the sync client needs of an HTTP client: `httpx.Client`, or Starlette's TestClient in unit tests."""

    # Any: Starlette's TestClient answers with its own httpx's Response, which has the same `status_code` and `json()`.
    def post(self, url: str, *, json: Any, headers: dict[str, str]) -> Any: ...


class _Asking:
    """What the sync and the async client share: the credential header and how questions are batched."""

    def __init__(self, *, credential: str, batch_size: int):
        self._headers = {"Authorization": f"Bearer {credential}"}
        self._batch = batch_size

    def _batches(
        self, subject: Mapping[str, Any], items: Sequence[Item], context: Mapping[str, Any] | None
    ) -> list[tuple[dict[str, Any], int]]:
        """The `/access/v1/evaluations` bodies for `items`, `batch_size` questions each, with their sizes."""
        chunks = [items[start : start + self._batch] for start in range(0, len(items), self._batch)]
        return [(evaluations_request(subject, chunk, context), len(chunk)) for chunk in chunks]


class AuthzenClient(_Asking):
    """Asks the decision point with one service credential, synchronously (`http` has the base URL)."""

    def __init__(self, http: SyncHttp, *, credential: str, batch_size: int = MAX_BATCH):
        super().__init__(credential=credential, batch_size=batch_size)
        self._http = http

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from None
        return _answer(response, path)

    def evaluate(
        self,
        subject: Mapping[str, Any],
        action: str,
        resource: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
    ) -> Verdict:
        """One decision.

        Raises:
            AuthzenFailure: no decision could be had.
        """
        return verdict_of(self._post(EVALUATION_PATH, evaluation_request(subject, action, resource, context)))

    def evaluate_many(
        self, subject: Mapping[str, Any], items: Sequence[Item], context: Mapping[str, Any] | None = None
    ) -> list[Verdict]:
        """Decisions for many (action, resource) questions of one subject, in order, `batch_size` per request.

        Raises:
            AuthzenFailure: a batch could not be decided.
        """
        verdicts: list[Verdict] = []
        for body, size in self._batches(subject, items, context):
            verdicts += _batch_verdicts(self._post(EVALUATIONS_PATH, body), size)
        return verdicts


class AsyncAuthzenClient(_Asking):
    """Asks the decision point with one service credential from async code (`http` has the base URL)."""

    def __init__(self, http: httpx.AsyncClient, *, credential: str, batch_size: int = MAX_BATCH):
        super().__init__(credential=credential, batch_size=batch_size)
        self._http = http

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post(path, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from None
        return _answer(response, path)

    async def evaluate(
        self,
        subject: Mapping[str, Any],
        action: str,
        resource: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
    ) -> Verdict:
        """One decision.

        Raises:
            AuthzenFailure: no decision could be had.
        """
        return verdict_of(await self._post(EVALUATION_PATH, evaluation_request(subject, action, resource, context)))

    async def evaluate_many(
        self, subject: Mapping[str, Any], items: Sequence[Item], context: Mapping[str, Any] | None = None
    ) -> list[Verdict]:
        """Decisions for many (action, resource) questions of one subject, in order, `batch_size` per request.

        Raises:
            AuthzenFailure: a batch could not be decided.
        """
        verdicts: list[Verdict] = []
        for body, size in self._batches(subject, items, context):
            verdicts += _batch_verdicts(await self._post(EVALUATIONS_PATH, body), size)
        return verdicts
