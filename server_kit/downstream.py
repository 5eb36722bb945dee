"""Downstream calls on the caller's behalf, with a token obtained by token exchange (RFC 8693).

A server never forwards the token it received: that token's audience is this server, and passing it on would
let every downstream replay it here. It trades the token instead, authenticated as its own OAuth client
(`server.<name>` in the directory, allowed to act for this server), for a token whose audience is the
downstream resource: same user and groups, `act: {sub: <this server's client>}`, no wider scope, no refresh.

Exchanged tokens are kept until shortly before they expire, per (caller's token, resource), so a tool that calls
the same downstream on every call pays for the exchange once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

import httpx

from server_kit.errors import DownstreamAuthError

__all__ = ["ACCESS_TOKEN_TYPE", "TOKEN_EXCHANGE_GRANT", "TokenExchanger"]

logger = logging.getLogger("portcullis.kit.downstream")
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
_EXPIRY_MARGIN_SECONDS = 30.0
_MAX_CACHED = 10_000


class TokenExchanger:
    """Trades callers' tokens for downstream tokens at the issuer's token endpoint."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        timeout_seconds: float = 5.0,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._token_url = token_url
        self._auth = (client_id, client_secret) if client_secret else None
        self._client_id = client_id
        self._http = http or httpx.AsyncClient(timeout=timeout_seconds)
        self._owns_http = http is None
        self._clock = clock
        self._cache: dict[tuple[str, str, str], tuple[str, float]] = {}

    @property
    def configured(self) -> bool:
        """Whether this server has a client secret to exchange tokens with."""
        return self._auth is not None

    async def aclose(self) -> None:
        """Close the HTTP client when the exchanger made it."""
        if self._owns_http:
            await self._http.aclose()

    async def exchange(self, subject_token: str, resource: str, scope: str = "") -> str:
        """An access token for `resource`, on behalf of the subject of `subject_token`.

        Raises:
            DownstreamAuthError: token exchange is not configured, the issuer is unreachable, or it refused the
                exchange (the message carries its OAuth error code, never a token).
        """
        if self._auth is None:
            raise DownstreamAuthError(
                "token exchange is not configured for this server (set its KIT_<NAME>_CLIENT_SECRET)"
            )
        key = (hashlib.sha256(subject_token.encode()).hexdigest(), resource, scope)
        cached = self._cache.get(key)
        now = self._clock()
        if cached is not None and now < cached[1]:
            return cached[0]
        form = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "resource": resource,
        }
        if scope:
            form["scope"] = scope
        try:
            response = await self._http.post(self._token_url, data=form, auth=self._auth)
        except httpx.HTTPError as exc:
            logger.warning("token exchange: issuer unreachable (%s)", type(exc).__name__)
            raise DownstreamAuthError("the issuer is unreachable, so no downstream token could be obtained") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise DownstreamAuthError(f"the issuer answered token exchange with HTTP {response.status_code}")
        if response.status_code != 200:
            error = str(body.get("error", "error"))[:64]
            description = str(body.get("error_description", ""))[:200]
            logger.warning("token exchange for %s refused: %s", resource, error)
            message = f"the issuer refused token exchange for {resource}: {error} {description}"
            raise DownstreamAuthError(message.strip())
        token = body.get("access_token")
        expires_in = body.get("expires_in", 0)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            raise DownstreamAuthError("the issuer's token exchange answer has no usable access token")
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (token, now + max(0.0, float(expires_in) - _EXPIRY_MARGIN_SECONDS))
        return token
