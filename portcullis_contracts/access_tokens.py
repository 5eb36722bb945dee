"""Checking an access token the platform's identity issued: its key, its claims, and the revocation feed.

The registry (sync, its own API) and the server kit (async, every MCP request) verify the same JWTs: signature
against the issuer's JWKS (keys cached by `kid`, an unknown `kid` refetched at most every 10 s), issuer, audience,
expiry with a leeway, the claims every token carries, a usable `jti`, and that `jti` against the ids the issuer's
revocation feed lists. The rules live here once; each service keeps what is its own: how it reads the header,
which caller it builds from the claims, and which status a failure becomes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import jwt

__all__ = [
    "ALGORITHMS",
    "IssuerKeys",
    "KeySource",
    "KeysUnavailable",
    "TokenRefused",
    "check_not_revoked",
    "decode_access_token",
]

ALGORITHMS = ["RS256", "ES256"]
_MAX_JTI_CHARS = 256
_MAX_KID_CHARS = 128
_UNKNOWN_KID_SECONDS = 10.0  # an unknown kid refetches the JWKS at most this often
_MAX_REMEMBERED_KIDS = 1_000


class TokenRefused(Exception):
    """The token is not acceptable (RFC 6750 `invalid_token`); the message says why, without the token."""


class KeysUnavailable(Exception):
    """The token's key is not cached and the issuer's JWKS cannot be fetched: nothing can be verified now."""


class KeySource(Protocol):
    """Where keys come from: `jwt.PyJWKClient`, or a fixed set in tests."""

    def get_signing_key(self, kid: str) -> jwt.PyJWK: ...


class IssuerKeys:
    """The issuer's signing keys by `kid`, each cached for `cache_seconds`."""

    def __init__(
        self,
        jwks_url: str,
        *,
        cache_seconds: int = 300,
        clock: Callable[[], float] = time.monotonic,
        source: KeySource | None = None,
    ):
        self._ttl = float(cache_seconds)
        self._clock = clock
        # PyJWKClient's own cool-down (30 s by default) would refuse a new key for longer than our own limit on
        # refetching for an unknown kid: keep one rule, ours.
        self._source: KeySource = source or jwt.PyJWKClient(
            jwks_url,
            cache_keys=False,
            lifespan=max(1, cache_seconds),
            timeout=5,
            cooldown_duration=_UNKNOWN_KID_SECONDS,
        )
        self._keys: dict[str, tuple[jwt.PyJWK, float]] = {}
        self._unknown: dict[str, float] = {}

    @staticmethod
    def kid_of(token: str) -> str:
        """The key id the token's header names.

        Raises:
            TokenRefused: not a JWT, or no usable key id.
        """
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise TokenRefused("the token is not a JWT") from None
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_CHARS:
            raise TokenRefused("the token names no usable key id")
        return kid

    def cached(self, kid: str) -> jwt.PyJWK | None:
        """The key for `kid` if it is cached and fresh (never fetches)."""
        entry = self._keys.get(kid)
        return entry[0] if entry is not None and self._clock() - entry[1] < self._ttl else None

    def fetch(self, kid: str) -> jwt.PyJWK:
        """The key for `kid` from the issuer's JWKS. Blocking (urllib): async callers run it in a thread.

        Raises:
            TokenRefused: the JWKS has no such key (and one asked within 10 s did not either).
            KeysUnavailable: the JWKS cannot be fetched.
        """
        now = self._clock()
        if now - self._unknown.get(kid, -_UNKNOWN_KID_SECONDS) < _UNKNOWN_KID_SECONDS:
            raise TokenRefused("the token is signed by an unknown key")
        try:
            key = self._source.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise KeysUnavailable("the issuer's keys cannot be fetched; try again shortly") from None
        except jwt.PyJWKClientError:
            if len(self._unknown) >= _MAX_REMEMBERED_KIDS:
                self._unknown.clear()
            self._unknown[kid] = now
            raise TokenRefused("the token is signed by an unknown key") from None
        self._keys[kid] = (key, now)
        return key

    def key_for(self, token: str) -> jwt.PyJWK:
        """The key that should have signed `token`, cached or fetched (blocking on a miss).

        Raises:
            TokenRefused: see `kid_of` and `fetch`.
            KeysUnavailable: see `fetch`.
        """
        kid = self.kid_of(token)
        return self.cached(kid) or self.fetch(kid)


def decode_access_token(
    token: str, key: jwt.PyJWK, *, issuer: str, audience: str, leeway_seconds: int, require_jti: bool = True
) -> dict[str, Any]:
    """The claims of a token signed by `key`, for `audience`, from `issuer`, not expired.

    `require_jti`: a token without a usable id could never be found in the revocation feed, so it could not be
    revoked; a service that follows the feed requires one.

    Raises:
        TokenRefused: bad signature, issuer, audience, expiry, a missing claim or an unusable `jti`.
    """
    required = ["exp", "iat", "iss", "aud", "sub"] + (["jti"] if require_jti else [])
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            issuer=issuer,
            audience=audience,
            leeway=leeway_seconds,
            options={"require": required},
        )
    except jwt.InvalidAudienceError:
        raise TokenRefused("the token was not issued for this server") from None
    except jwt.ExpiredSignatureError:
        raise TokenRefused("the token has expired") from None
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"invalid token ({type(exc).__name__})") from None
    if require_jti and not _usable_jti(claims["jti"]):
        raise TokenRefused("invalid token (its jti is not a token id)")
    return claims


def _usable_jti(jti: Any) -> bool:
    return isinstance(jti, str) and bool(jti) and len(jti) <= _MAX_JTI_CHARS


def check_not_revoked(claims: dict[str, Any], revoked: Callable[[], frozenset[str]]) -> None:
    """Refuse a token whose `jti` the issuer's revocation feed lists.

    Raises:
        TokenRefused: revoked, or without a usable `jti` (it could never be revoked).
        RevocationsUnavailable: the feed cannot be vouched for now (fail closed).
    """
    jti = claims.get("jti")
    if not _usable_jti(jti):
        raise TokenRefused("invalid token (its jti is not a token id)")
    if jti in revoked():
        raise TokenRefused("the token was revoked")
