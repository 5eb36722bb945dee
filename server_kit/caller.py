"""Who is calling: built from the claims of a verified token, never from identity headers alone.

A tool receives the caller by declaring a parameter annotated `Caller`; the kit fills it and keeps it out of
the tool's input schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from server_kit.data import READ_ACTION, Dataset
from server_kit.errors import AccessDenied, KitError, Unauthenticated

if TYPE_CHECKING:
    from server_kit.authz import Authorizer
    from server_kit.downstream import TokenExchanger

__all__ = [
    "CALLER_SCOPE_KEY",
    "DECISION_ID_HEADER",
    "REQUEST_ID_HEADER",
    "Caller",
    "CallerServices",
    "caller_from_claims",
]

_T = TypeVar("_T")

# Where the bearer middleware leaves the verified caller in the ASGI scope (an ASGI extension key).
CALLER_SCOPE_KEY = "portcullis.caller"
# The edge decision's id, set by the gateway (ext_authz overwrites what a client sent). Used for correlation only.
DECISION_ID_HEADER = "x-portcullis-decision-id"
REQUEST_ID_HEADER = "x-request-id"
_MAX_HEADER_CHARS = 128


@dataclass(frozen=True)
class CallerServices:
    """What a caller's helpers need from the running server: its authorizer and its token exchanger."""

    authorizer: Authorizer
    exchanger: TokenExchanger
    denial: Callable[[str, str], AccessDenied]


@dataclass(frozen=True)
class Caller:
    """The person (or agent) behind a request, and the client application acting for them.

    Attributes:
        user: the token's subject (`sub`).
        client_id: the client application (`client_id`, else `azp`).
        email, name: from the token, "" when absent.
        groups, business_groups: sorted, from the token.
        scopes: the token's scopes.
        decision_id: the gateway's (edge) decision id for this request, "" when reached directly.
        request_id: the request id Envoy assigned, "" when absent.
    """

    user: str
    client_id: str = ""
    email: str = ""
    name: str = ""
    groups: tuple[str, ...] = ()
    business_groups: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    decision_id: str = ""
    request_id: str = ""
    # The verified bearer token: only for token exchange (RFC 8693) to a downstream, never forwarded or logged.
    _token: str = field(default="", repr=False, compare=False)
    _services: CallerServices | None = field(default=None, repr=False, compare=False)

    def _running(self) -> CallerServices:
        if self._services is None:
            raise KitError("this caller is not attached to a running server")
        return self._services

    async def readable(self, datasets: Iterable[Dataset]) -> list[bool]:
        """Whether this caller may read each dataset (policy action `read`), asked once per distinct dataset in
        one batch. Fails closed: a dataset that cannot be decided is not readable.
        """
        from server_kit.authz import Check

        services = self._running()
        items = list(datasets)
        distinct = {item.key: item for item in items}
        checks = [Check(item.name, READ_ACTION, item.policy_properties(), kind="dataset") for item in distinct.values()]
        verdicts = await services.authorizer.check_many(self, checks)
        allowed = {key: verdict.allowed for key, verdict in zip(distinct, verdicts, strict=True)}
        return [allowed[item.key] for item in items]

    async def filter_readable(self, items: Iterable[_T], dataset: Callable[[_T], Dataset]) -> list[_T]:
        """The items (rows, tables, partitions) whose dataset this caller may read, in their order."""
        kept = list(items)
        verdicts = await self.readable(dataset(item) for item in kept)
        return [item for item, allowed in zip(kept, verdicts, strict=True) if allowed]

    async def require(self, action: str, dataset: Dataset) -> None:
        """Return when the policy allows this caller `action` on `dataset` (a table to read, a workflow to
        operate: whatever a tool acts on beyond the call itself, labelled as a `Dataset`).

        Raises:
            AccessDenied: the policy denies it (or cannot decide); the client sees the reason.
        """
        from server_kit.authz import Check

        services = self._running()
        check = Check(dataset.name, action, dataset.policy_properties(), kind="dataset")
        verdict = await services.authorizer.check(self, check)
        if not verdict.allowed:
            raise services.denial(verdict.reason, verdict.decision_id)

    async def exchange_token(self, resource: str, scope: str = "") -> str:
        """A token for the downstream `resource` on this caller's behalf (RFC 8693), never the caller's own.

        Raises:
            DownstreamAuthError: token exchange is not configured, refused, or the issuer is unreachable.
        """
        return await self._running().exchanger.exchange(self._token, resource, scope)

    @property
    def subject(self) -> dict[str, Any]:
        """The AuthZEN subject for this caller."""
        return {
            "type": "user",
            "id": self.user,
            "properties": {
                "client_id": self.client_id,
                "email": self.email,
                "groups": list(self.groups),
                "business_groups": list(self.business_groups),
            },
        }

    @property
    def cache_key(self) -> tuple[str, str, str, tuple[str, ...], tuple[str, ...]]:
        """Everything about the caller a decision depends on."""
        return (self.user, self.client_id, self.email, self.groups, self.business_groups)


def _strings(claims: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = claims.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthenticated(f"token claim {key!r} must be a list of strings")
    return tuple(sorted(value))


def _text(claims: Mapping[str, Any], key: str) -> str:
    value = claims.get(key, "")
    if not isinstance(value, str):
        raise Unauthenticated(f"token claim {key!r} must be a string")
    return value


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "")
    # Printable and short: it goes into logs.
    return value[:_MAX_HEADER_CHARS] if value.isprintable() else ""


def caller_from_claims(
    claims: Mapping[str, Any], token: str, headers: Mapping[str, str], services: CallerServices | None = None
) -> Caller:
    """The caller of verified `claims`; `headers` (lower-case names) give only correlation ids.

    Raises:
        Unauthenticated: a claim has the wrong shape.
    """
    user = _text(claims, "sub")
    if not user:
        raise Unauthenticated("token has no subject")
    return Caller(
        user=user,
        client_id=_text(claims, "client_id") or _text(claims, "azp"),
        email=_text(claims, "email"),
        name=_text(claims, "name"),
        groups=_strings(claims, "groups"),
        business_groups=_strings(claims, "business_groups"),
        scopes=tuple(_text(claims, "scope").split()),
        decision_id=_header(headers, DECISION_ID_HEADER),
        request_id=_header(headers, REQUEST_ID_HEADER),
        _token=token,
        _services=services,
    )
