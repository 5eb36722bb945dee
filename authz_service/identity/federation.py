"""Login federation to an upstream OIDC provider: the authorization server is that provider's client
(authorization code + PKCE), and the person's groups and business groups come from the ID token's claims.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from authz_service.identity.errors import FederationError
from authz_service.identity.subject import Subject

__all__ = ["PendingLogin", "UpstreamProvider"]

_DISCOVERY_TTL_SECONDS = 300


@dataclass(frozen=True)
class PendingLogin:
    """What the browser's federation cookie holds between the redirect and the callback."""

    state: str
    nonce: str
    verifier: str


class UpstreamProvider:
    """One upstream OpenID provider, discovered from its issuer URL."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        groups_claim: str,
        business_groups_claim: str,
        http: httpx.Client | None = None,
    ):
        self.issuer = issuer.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._groups_claim = groups_claim
        self._business_groups_claim = business_groups_claim
        self._http = http or httpx.Client(timeout=5.0)
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: jwt.PyJWKClient | None = None

    def _discover(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._metadata_at > _DISCOVERY_TTL_SECONDS:
            try:
                response = self._http.get(f"{self.issuer}/.well-known/openid-configuration")
                response.raise_for_status()
                metadata = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise FederationError(f"upstream provider discovery failed: {type(exc).__name__}") from None
            if metadata.get("issuer", "").rstrip("/") != self.issuer:
                raise FederationError("upstream provider metadata names another issuer")
            self._metadata, self._metadata_at = metadata, time.monotonic()
            self._jwks = jwt.PyJWKClient(metadata["jwks_uri"], cache_keys=True, lifespan=300)
        return self._metadata

    def start(self) -> tuple[str, PendingLogin]:
        """The upstream authorization URL to send the browser to, and what to remember until it comes back."""
        metadata = self._discover()
        pending = PendingLogin(
            state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24), verifier=secrets.token_urlsafe(48)
        )
        query = urlencode({
            "response_type": "code",
            "client_id": self._client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid profile email",
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": create_s256_code_challenge(pending.verifier),
            "code_challenge_method": "S256",
        })  # fmt: skip
        return f"{metadata['authorization_endpoint']}?{query}", pending

    def finish(self, params: dict[str, str], pending: PendingLogin) -> Subject:
        """The person who signed in upstream, from the callback's parameters.

        Raises:
            FederationError: an error answer, a state or issuer mismatch, or an ID token that does not verify.
        """
        metadata = self._discover()
        if not secrets.compare_digest(params.get("state", ""), pending.state):
            raise FederationError("the login state does not match; start again")
        if "error" in params:
            raise FederationError(f"the upstream provider refused the login: {params['error']}")
        if params.get("iss") and params["iss"].rstrip("/") != self.issuer:  # RFC 9207: mix-up defense
            raise FederationError("the authorization response came from another issuer")
        try:
            response = self._http.post(
                metadata["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": params.get("code", ""),
                    "redirect_uri": self.redirect_uri,
                    "code_verifier": pending.verifier,
                },
                auth=(self._client_id, self._client_secret),
            )
        except httpx.HTTPError as exc:
            raise FederationError(f"upstream token endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise FederationError(f"upstream token endpoint answered {response.status_code}")
        id_token = response.json().get("id_token")
        if not isinstance(id_token, str):
            raise FederationError("the upstream provider returned no ID token")
        assert self._jwks is not None
        try:
            key = self._jwks.get_signing_key_from_jwt(id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token, key.key, algorithms=["RS256", "ES256"], audience=self._client_id, issuer=self.issuer
            )
        except jwt.PyJWTError as exc:
            raise FederationError(f"the upstream ID token does not verify: {type(exc).__name__}") from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), pending.nonce):
            raise FederationError("the upstream ID token's nonce does not match")
        return Subject(
            sub=str(claims["sub"]),
            email=str(claims.get("email", "")),
            name=str(claims.get("name", "")),
            groups=tuple(_strings(claims.get(self._groups_claim))),
            business_groups=tuple(_strings(claims.get(self._business_groups_claim))),
            source=self.issuer,
            auth_time=int(claims.get("auth_time", time.time())),
        )


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return sorted(str(item) for item in value)
    return [str(value)] if value else []
