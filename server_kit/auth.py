"""Bearer-token authentication inside the server (defense in depth behind the gateway's jwt_authn).

`TokenVerifier` checks a JWT: signature against the issuer's JWKS (keys cached by `kid`), issuer, audience
(this server's canonical URI), expiry, the required scope, and that its id (`jti`) is not in the issuer's
revocation feed (`portcullis_contracts.revocations`), on every request, cached or not. `BearerAuth` is pure
ASGI middleware around the MCP app: a request without a valid token gets 401 with the RFC 9728 challenge
(`resource_metadata`, `scope`, and `error="invalid_token"` when a token was presented); a valid one leaves a
`Caller` in the ASGI scope.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread
import jwt
from starlette.types import ASGIApp, Receive, Scope, Send

from portcullis_contracts.access_tokens import (
    IssuerKeys,
    KeysUnavailable,
    TokenRefused,
    check_not_revoked,
    decode_access_token,
)
from portcullis_contracts.resource_metadata import challenge
from portcullis_contracts.revocations import RevocationsUnavailable
from server_kit.caller import CALLER_SCOPE_KEY, Caller, CallerServices, caller_from_claims
from server_kit.errors import IssuerUnavailable, Unauthenticated

__all__ = ["BearerAuth", "TokenVerifier"]

logger = logging.getLogger("portcullis.kit.auth")
_VERIFIED_RECHECK_SECONDS = 60.0
_MAX_VERIFIED_TOKENS = 10_000


class TokenVerifier:
    """Verifies access tokens for one audience."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str,
        revoked: Callable[[], frozenset[str]],
        required_scope: str = "",
        leeway_seconds: int = 30,
        jwks_cache_seconds: int = 300,
        clock: Callable[[], float] = time.monotonic,
        services: CallerServices | None = None,
    ):
        self._issuer = issuer
        self._services = services
        self._revoked = revoked
        self._audience = audience
        self._required_scope = required_scope
        self._leeway = leeway_seconds
        self._keys = IssuerKeys(jwks_url, cache_seconds=jwks_cache_seconds, clock=clock)
        # Tokens already verified, until they expire (or a minute passes): a client sends the same token on every
        # call, and parsing plus checking it again was about half of the kit's per-call cost (bench/kit_bench).
        self._verified: dict[str, tuple[dict[str, Any], float]] = {}

    async def _key(self, token: str) -> jwt.PyJWK:
        kid = self._keys.kid_of(token)
        cached = self._keys.cached(kid)
        if cached is not None:
            return cached
        try:
            # PyJWKClient fetches with urllib (blocking): off the event loop, and only on a cache miss.
            return await anyio.to_thread.run_sync(self._keys.fetch, kid)
        except KeysUnavailable as exc:
            logger.warning("cannot fetch the issuer's JWKS")
            raise IssuerUnavailable(str(exc)) from None

    async def verify(self, token: str, headers: Mapping[str, str]) -> Caller:
        """The caller behind a bearer token; `headers` (lower-case names) give only correlation ids.

        Raises:
            Unauthenticated: bad signature, issuer, audience, expiry, shape, a revoked token (`invalid_token`),
                or a missing scope (`insufficient_scope`).
            IssuerUnavailable: the key is not cached and the JWKS cannot be fetched, or the revocation feed has
                not answered within its bound (fail closed).
        """
        try:
            claims = await self._claims(token)
            # After the cache, on every request: a token revoked after it was cached is refused from the next call.
            check_not_revoked(claims, self._revoked)
        except TokenRefused as exc:
            raise Unauthenticated(str(exc)) from None
        except RevocationsUnavailable:
            raise IssuerUnavailable("revoked tokens cannot be checked now (revocation feed unreachable)") from None
        caller = caller_from_claims(claims, token, headers, self._services)
        if self._required_scope and self._required_scope not in caller.scopes:
            raise Unauthenticated(f"the token lacks the {self._required_scope!r} scope", error="insufficient_scope")
        return caller

    async def _claims(self, token: str) -> dict[str, Any]:
        cached = self._verified.get(token)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        key = await self._key(token)
        claims = decode_access_token(
            token, key, issuer=self._issuer, audience=self._audience, leeway_seconds=self._leeway
        )
        recheck_at = min(float(claims["exp"]), time.time() + _VERIFIED_RECHECK_SECONDS)
        if len(self._verified) >= _MAX_VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = (claims, recheck_at)
        return claims


class BearerAuth:
    """ASGI middleware: every HTTP request through it needs a valid bearer token for this server."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        *,
        resource_metadata_url: str,
        scope: str,
        on_refused: Callable[[str], None] | None = None,
    ):
        self._app = app
        self._verifier = verifier
        self._metadata_url = resource_metadata_url
        self._scope = scope
        self._on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        authorizations = 0
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            authorizations += name == "authorization"
            headers[name] = raw_value.decode("latin-1")
        try:
            scope[CALLER_SCOPE_KEY] = await self._verifier.verify(_bearer(headers, authorizations), headers)
        except Unauthenticated as exc:
            await self._refuse(send, exc.error, str(exc))
            return
        except IssuerUnavailable as exc:
            await _send_json(send, 503, {"error": "temporarily_unavailable", "error_description": str(exc)}, {})
            return
        await self._app(scope, receive, send)

    async def _refuse(self, send: Send, error: str, description: str) -> None:
        if self._on_refused is not None:
            self._on_refused(error or "missing_token")
        logger.info("request refused: %s (%s)", error or "missing_token", description)
        status = 403 if error == "insufficient_scope" else 401
        www = challenge(
            resource_metadata_url=self._metadata_url, scope=self._scope, error=error, description=description
        )
        body = {"error": error or "unauthorized", "error_description": description}
        await _send_json(send, status, body, {"www-authenticate": www})


def _bearer(headers: Mapping[str, str], count: int) -> str:
    if count == 0:
        raise Unauthenticated("this MCP server requires a bearer token (see WWW-Authenticate)", error="")
    scheme, _, token = headers["authorization"].partition(" ")
    token = token.strip()
    if count > 1 or scheme.lower() != "bearer" or not token:
        raise Unauthenticated("expected one 'Authorization: Bearer <token>' header", error="invalid_request")
    return token


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
