"""The registry as an AuthZEN client of authz_service: who may publish, review, approve or retire.

The wire (bodies, answers, the client) is `portcullis_contracts.authzen`; this module says who the subject is and
what failing closed means here: a decision that cannot be had is `AuthzUnavailable` (nothing is written), never an
allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from portcullis_contracts.authzen import AuthzenClient, AuthzenFailure, SyncHttp, Verdict
from registry.errors import AuthzUnavailable
from registry.identity import RegistryCaller

__all__ = ["AuthzClient", "HttpClient", "Verdict"]

_BATCH = 200  # evaluations per HTTP request
HttpClient = SyncHttp


def subject(caller: RegistryCaller) -> dict[str, Any]:
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


def _unavailable(failure: AuthzenFailure) -> AuthzUnavailable:
    if failure.status is not None and failure.status != 200:
        return AuthzUnavailable(f"the authorization service answered {failure.status}; nothing was changed")
    if failure.status is None:
        return AuthzUnavailable("the authorization service is unavailable; nothing was changed")
    return AuthzUnavailable("the authorization service gave an unexpected answer")


def _decided(verdict: Verdict) -> Verdict:
    if verdict.failed:
        raise AuthzUnavailable("the authorization service gave an unexpected answer")
    return verdict


class AuthzClient:
    """Asks `/access/v1/evaluation(s)` with the registry's service credential."""

    def __init__(self, http: HttpClient, *, credential: str):
        self._client = AuthzenClient(http, credential=credential, batch_size=_BATCH)

    def evaluate(self, caller: RegistryCaller, action: str, resource: dict[str, Any]) -> Verdict:
        """One decision for (caller, action, resource).

        Raises:
            AuthzUnavailable: no decision could be had (fail closed).
        """
        try:
            return _decided(self._client.evaluate(subject(caller), action, resource))
        except AuthzenFailure as failure:
            raise _unavailable(failure) from None

    def evaluate_many(self, caller: RegistryCaller, items: Sequence[tuple[str, dict[str, Any]]]) -> list[Verdict]:
        """Decisions for many (action, resource) pairs of one caller, in order (batched evaluations).

        Raises:
            AuthzUnavailable: no decision could be had for one of them (fail closed).
        """
        try:
            return [_decided(verdict) for verdict in self._client.evaluate_many(subject(caller), items)]
        except AuthzenFailure as failure:
            raise _unavailable(failure) from None
