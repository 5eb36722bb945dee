"""Who is calling: a bearer JWT issued by the platform's identity, verified against its JWKS."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portcullis_contracts.access_tokens import (
    IssuerKeys,
    KeySource,
    KeysUnavailable,
    TokenRefused,
    check_not_revoked,
    decode_access_token,
)
from portcullis_contracts.revocations import RevocationsUnavailable as FeedUnavailable
from registry.errors import RevocationsUnavailable, Unauthenticated

__all__ = ["RegistryCaller", "RegistryTokenVerifier"]

logger = logging.getLogger("portcullis.registry.identity")
_LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class RegistryCaller:
    """A person (or their client application) acting on the registry."""

    id: str
    client: str = "registry-ui"
    email: str = ""
    name: str = ""
    groups: tuple[str, ...] = ()
    business_groups: tuple[str, ...] = ()
    # The actor chain of a delegated token (RFC 8693 `act`, token exchange): who acts for the person, the most
    # recent actor first. Empty when the person (through their own client) is calling.
    delegated_by: tuple[str, ...] = ()


_MAX_ACT_DEPTH = 8


def _actor_chain(claims: dict[str, Any]) -> tuple[str, ...]:
    """The `sub` of each nested `act` claim, outermost first.

    Raises:
        Unauthenticated: an `act` claim that is not a chain of objects with a string `sub`: a token whose
            delegation cannot be read is refused, never taken for the person's own.
    """
    chain: list[str] = []
    act = claims.get("act")
    while act is not None:
        if not isinstance(act, dict) or not isinstance(act.get("sub"), str) or not act["sub"]:
            raise Unauthenticated("invalid token: malformed act claim")
        if len(chain) == _MAX_ACT_DEPTH:
            raise Unauthenticated("invalid token: act claim nested too deeply")
        chain.append(act["sub"])
        act = act.get("act")
    return tuple(chain)


def _strings(claims: dict[str, Any], key: str) -> tuple[str, ...]:
    value = claims.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Unauthenticated(f"token claim {key!r} must be a list of strings")
    return tuple(sorted(value))


class RegistryTokenVerifier:
    """Verifies the platform's access tokens for the registry (`portcullis_contracts.access_tokens`: signature by
    the JWKS key its `kid` names, issuer, audience, expiry) and, given `revoked` (the ids of revoked tokens, from the
    issuer's revocation feed), that the token's `jti` is not one of them.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str,
        jwks_client: KeySource | None = None,
        revoked: Callable[[], frozenset[str]] | None = None,
    ):
        self._issuer = issuer
        self._audience = audience
        self._keys = IssuerKeys(jwks_url, source=jwks_client)
        self._revoked = revoked

    def verify(self, authorization: str | None) -> RegistryCaller:
        """The caller behind an `Authorization: Bearer ...` header.

        Raises:
            Unauthenticated: missing, malformed, expired, wrongly signed, for another audience, or revoked; or the
                issuer's keys cannot be fetched now.
            RevocationsUnavailable: the revocation list cannot be vouched for now (fail closed).
        """
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("a bearer token is required")
        try:
            key = self._keys.key_for(token)
            claims = decode_access_token(
                token,
                key,
                issuer=self._issuer,
                audience=self._audience,
                leeway_seconds=_LEEWAY_SECONDS,
                require_jti=self._revoked is not None,
            )
            if self._revoked is not None:
                check_not_revoked(claims, self._revoked)
        except KeysUnavailable:
            logger.warning("cannot fetch the issuer's JWKS")
            raise Unauthenticated("the token cannot be verified now (issuer keys unavailable)") from None
        except TokenRefused as exc:
            raise Unauthenticated(str(exc)) from None
        except FeedUnavailable:
            logger.warning("the revocation feed is unavailable: tokens are refused until it answers")
            raise RevocationsUnavailable("the token cannot be checked now (revocation list unavailable)") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("invalid token: no subject")
        return RegistryCaller(
            id=subject,
            client=str(claims.get("client_id", "")),
            email=str(claims.get("email", "")),
            name=str(claims.get("name", "")),
            groups=_strings(claims, "groups"),
            business_groups=_strings(claims, "business_groups"),
            delegated_by=_actor_chain(claims),
        )
