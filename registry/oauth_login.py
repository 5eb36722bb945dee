"""The web UI's sign-in through the platform's authorization server: the registry is a confidential OAuth client
(authorization code + PKCE S256 on Authlib's OAuth client, RFC 8707 resource = the registry's audience, RFC 9207
issuer check). The access token it receives is verified like any API token and becomes the session's identity;
the token itself is not kept.

The server's metadata (RFC 8414) is read once and re-read at most every five minutes, never once per sign-in.
Whatever the server answers, a sign-in ends in a `RegistryCaller` or a `LoginFailed`: `LoginUnavailable` when the
server cannot be used (unreachable, not JSON, metadata without the endpoints it must name, an error status),
plain `LoginFailed` when this sign-in is refused (state or issuer mismatch, a refused code, a token that does
not verify).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.httpx_client import OAuth2Client, OAuthError

from registry.errors import LoginFailed, LoginUnavailable
from registry.identity import RegistryCaller, RegistryTokenVerifier
from registry.settings import RegistrySettings

# LoginFailed and LoginUnavailable live in registry.errors; re-exported because a sign-in raises them.
__all__ = ["LoginFailed", "LoginUnavailable", "OAuthLogin", "PendingLogin"]

_METADATA_TTL_SECONDS = 300.0
_TIMEOUT_SECONDS = 5.0
_SCOPE = "openid profile email"
_UNREACHABLE = "the sign-in service is unreachable; try again shortly"


@dataclass(frozen=True)
class PendingLogin:
    """What the browser carries (signed) between the redirect and the callback."""

    state: str
    verifier: str
    next: str


@dataclass(frozen=True)
class _Endpoints:
    authorization_endpoint: str
    token_endpoint: str
    fetched_at: float


class OAuthLogin:
    """Signs people in through the authorization server; one per app, safe to share across threads."""

    def __init__(
        self, settings: RegistrySettings, verifier: RegistryTokenVerifier, transport: httpx2.BaseTransport | None = None
    ):
        self._issuer = settings.issuer.rstrip("/")
        self._client_id = settings.oauth_client_id
        self._client_secret = settings.oauth_client_secret.get_secret_value()
        self._resource = (settings.audience or settings.public_url).rstrip("/")
        self.redirect_uri = f"{settings.public_url.rstrip('/')}/auth/callback"
        self._verifier = verifier
        # One connection pool for every client built here (building a client's TLS context costs ~30 ms).
        self._transport = transport or httpx2.HTTPTransport()
        self._endpoints: _Endpoints | None = None  # swapped whole; a concurrent refresh at worst reads twice

    def start(self, next_path: str) -> tuple[str, PendingLogin]:
        """The authorization URL to send the browser to, and what to remember until it comes back.

        Raises:
            LoginUnavailable: the authorization server cannot be reached or its metadata is unusable.
        """
        endpoints = self._metadata()
        pending = PendingLogin(state=secrets.token_urlsafe(24), verifier=secrets.token_urlsafe(48), next=next_path)
        url, _ = self._client().create_authorization_url(
            endpoints.authorization_endpoint, state=pending.state, code_verifier=pending.verifier,
            resource=self._resource,
        )  # fmt: skip
        return str(url), pending

    def finish(self, params: dict[str, str], pending: PendingLogin) -> RegistryCaller:
        """The person who signed in.

        Raises:
            LoginFailed: a refusal, a state or issuer mismatch, or a refused code.
            LoginUnavailable: the authorization server cannot be reached or answered something unusable.
            RegistryError: the access token does not verify (the API's own verification).
        """
        if not secrets.compare_digest(params.get("state", ""), pending.state):
            raise LoginFailed("this sign-in did not start here, or it expired; sign in again")
        if params.get("iss", "").rstrip("/") != self._issuer:  # RFC 9207: refuse a response from another server
            raise LoginFailed("the sign-in answer came from another issuer")
        if "error" in params:
            raise LoginFailed(f"sign-in was not completed ({params['error'][:100]})")
        endpoints = self._metadata()
        try:
            token = self._client().fetch_token(
                endpoints.token_endpoint, grant_type="authorization_code", code=params.get("code", ""),
                code_verifier=pending.verifier, resource=self._resource,
            )  # fmt: skip
        except OAuthError as exc:  # a JSON error answer: the server refused this code
            raise LoginFailed(f"the sign-in could not be completed ({str(exc.error)[:100]})") from None
        except httpx2.HTTPStatusError as exc:
            raise LoginUnavailable(f"the sign-in service answered {exc.response.status_code}; try again") from None
        except httpx2.HTTPError:
            raise LoginUnavailable(_UNREACHABLE) from None
        except ValueError:  # Authlib: a 2xx answer that is not a JSON object
            raise LoginUnavailable("the sign-in service answered something unreadable; try again") from None
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise LoginUnavailable("the sign-in service returned no access token; try again")
        return self._verifier.verify(f"Bearer {access_token}")

    def _client(self) -> OAuth2Client:
        # A client per use: Authlib's client keeps the last token it fetched, so sharing one across concurrent
        # sign-ins could hand one person's token to another. Never closed: that would close the shared pool.
        return OAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret,
            token_endpoint_auth_method="client_secret_post",
            redirect_uri=self.redirect_uri,
            scope=_SCOPE,
            code_challenge_method="S256",
            timeout=_TIMEOUT_SECONDS,
            transport=self._transport,
        )

    def _metadata(self) -> _Endpoints:
        endpoints = self._endpoints
        if endpoints is None or time.monotonic() - endpoints.fetched_at > _METADATA_TTL_SECONDS:
            endpoints = self._read_metadata()
            self._endpoints = endpoints
        return endpoints

    def _read_metadata(self) -> _Endpoints:
        http = httpx2.Client(timeout=_TIMEOUT_SECONDS, transport=self._transport)
        try:
            response = http.get(f"{self._issuer}/.well-known/oauth-authorization-server")
            response.raise_for_status()
            metadata: Any = response.json()
        except (httpx2.HTTPError, ValueError):
            raise LoginUnavailable(_UNREACHABLE) from None
        if not isinstance(metadata, dict):
            raise LoginUnavailable(_UNREACHABLE)
        if str(metadata.get("issuer", "")).rstrip("/") != self._issuer:
            raise LoginUnavailable("the sign-in service names another issuer")
        found = {name: metadata.get(name) for name in ("authorization_endpoint", "token_endpoint")}
        for name, value in found.items():
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise LoginUnavailable(f"the sign-in service's metadata has no usable {name}")
        return _Endpoints(
            authorization_endpoint=str(found["authorization_endpoint"]),
            token_endpoint=str(found["token_endpoint"]),
            fetched_at=time.monotonic(),
        )
