"""The web UI's sign-in through the platform's authorization server: the registry is a confidential OAuth client
(authorization code + PKCE S256, RFC 8707 resource = the registry's audience, RFC 9207 issuer check). The access
token it receives is verified like any API token and becomes the session's identity; the token itself is not kept.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from registry.identity import Caller, TokenVerifier
from registry.settings import RegistrySettings

__all__ = ["LoginFailed", "OAuthLogin", "PendingLogin"]


class LoginFailed(Exception):
    """The sign-in did not complete; the message is safe to show."""


@dataclass(frozen=True)
class PendingLogin:
    """What the browser carries (signed) between the redirect and the callback."""

    state: str
    verifier: str
    next: str


class OAuthLogin:
    def __init__(self, settings: RegistrySettings, verifier: TokenVerifier, http: httpx.Client | None = None):
        self._issuer = settings.issuer.rstrip("/")
        self._client_id = settings.oauth_client_id
        self._client_secret = settings.oauth_client_secret
        self._resource = (settings.audience or settings.public_url).rstrip("/")
        self.redirect_uri = f"{settings.public_url.rstrip('/')}/auth/callback"
        self._verifier = verifier
        self._http = http or httpx.Client(timeout=5.0)

    def _metadata(self) -> dict[str, Any]:
        try:
            response = self._http.get(f"{self._issuer}/.well-known/oauth-authorization-server")
            response.raise_for_status()
            metadata: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError):
            raise LoginFailed("the sign-in service is unreachable; try again shortly") from None
        if str(metadata.get("issuer", "")).rstrip("/") != self._issuer:
            raise LoginFailed("the sign-in service names another issuer")
        return metadata

    def start(self, next_path: str) -> tuple[str, PendingLogin]:
        """The authorization URL to send the browser to, and what to remember until it comes back.

        Raises:
            LoginFailed: the authorization server cannot be reached.
        """
        pending = PendingLogin(state=secrets.token_urlsafe(24), verifier=secrets.token_urlsafe(48), next=next_path)
        query = urlencode({
            "response_type": "code",
            "client_id": self._client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid profile email",
            "state": pending.state,
            "resource": self._resource,
            "code_challenge": create_s256_code_challenge(pending.verifier),
            "code_challenge_method": "S256",
        })  # fmt: skip
        return f"{self._metadata()['authorization_endpoint']}?{query}", pending

    def finish(self, params: dict[str, str], pending: PendingLogin) -> Caller:
        """The person who signed in.

        Raises:
            LoginFailed: a refusal, a state or issuer mismatch, a failed exchange, or a token that does not verify.
        """
        if not secrets.compare_digest(params.get("state", ""), pending.state):
            raise LoginFailed("this sign-in did not start here, or it expired; sign in again")
        if params.get("iss", "").rstrip("/") != self._issuer:  # RFC 9207: refuse a response from another server
            raise LoginFailed("the sign-in answer came from another issuer")
        if "error" in params:
            raise LoginFailed(f"sign-in was not completed ({params['error']})")
        metadata = self._metadata()
        try:
            response = self._http.post(
                metadata["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": params.get("code", ""),
                    "redirect_uri": self.redirect_uri,
                    "code_verifier": pending.verifier,
                    "resource": self._resource,
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
            )
        except httpx.HTTPError:
            raise LoginFailed("the sign-in service is unreachable; try again shortly") from None
        if response.status_code != 200:
            raise LoginFailed(f"the sign-in could not be completed ({response.json().get('error', 'error')})")
        token = str(response.json().get("access_token", ""))
        return self._verifier.verify(f"Bearer {token}")
