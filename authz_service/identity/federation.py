"""Login federation to an upstream OIDC provider: the authorization server is that provider's client
(authorization code + PKCE, on Authlib's OAuth client), and the person's groups and business groups come from
the ID token's claims (validated by Authlib's OIDC `CodeIDToken`, signature checked against the provider's JWKS).

The provider's discovery document and key set are read once and re-read at most every five minutes (a key id
the set does not hold triggers an earlier re-read, at most every ten seconds: the provider rotated its keys),
never once per login. Whatever the provider answers, a login ends in a `Subject` or a `FederationError`:
`FederationUnavailable` when the provider cannot be used (unreachable, not JSON, a document without the
endpoints or keys it must name, an error status), plain `FederationError` when this login is refused (a state,
issuer or nonce that does not match, a refusal, an ID token that does not verify or names nobody).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from authz_service.identity.errors import FederationError, FederationUnavailable
from authz_service.identity.subject import Subject

__all__ = ["PendingLogin", "UpstreamProvider"]

_DISCOVERY_TTL_SECONDS = 300.0
_KEYS_RETRY_SECONDS = 10.0  # an unknown key id re-reads the key set no more often than this
_TIMEOUT_SECONDS = 5.0
_ALGORITHMS = ["RS256", "ES256"]
_LEEWAY_SECONDS = 60
_SCOPE = "openid profile email"


@dataclass(frozen=True)
class PendingLogin:
    """What the browser's federation cookie holds between the redirect and the callback."""

    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True)
class _Provider:
    """The parts of the discovery document a login uses, and the key set its `jwks_uri` published."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    keys: KeySet
    fetched_at: float
    keys_fetched_at: float


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
        transport: httpx2.BaseTransport | None = None,
    ):
        self.issuer = issuer.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._groups_claim = groups_claim
        self._business_groups_claim = business_groups_claim
        # One connection pool for every client built here (building a client's TLS context costs ~30 ms).
        self._transport = transport or httpx2.HTTPTransport()
        # One immutable snapshot, swapped whole: logins run on several threads, and a concurrent refresh at
        # worst reads the document twice.
        self._provider: _Provider | None = None

    def start(self) -> tuple[str, PendingLogin]:
        """The upstream authorization URL to send the browser to, and what to remember until it comes back.

        Raises:
            FederationUnavailable: the provider's discovery document or key set cannot be read or is unusable.
        """
        provider = self._discover()
        pending = PendingLogin(
            state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24), verifier=secrets.token_urlsafe(48)
        )
        url, _ = self._client().create_authorization_url(
            provider.authorization_endpoint, state=pending.state, code_verifier=pending.verifier, nonce=pending.nonce
        )
        return str(url), pending

    def finish(self, params: dict[str, str], pending: PendingLogin) -> Subject:
        """The person who signed in upstream, from the callback's parameters.

        Raises:
            FederationError: an error answer, a state or issuer mismatch, a refused code, or an ID token that does
                not verify or names nobody.
            FederationUnavailable: the provider cannot be reached or answered something unusable.
        """
        if not secrets.compare_digest(params.get("state", ""), pending.state):
            raise FederationError("the login state does not match; start again")
        if "error" in params:
            raise FederationError(f"the upstream provider refused the login: {params['error'][:100]}")
        if params.get("iss") and params["iss"].rstrip("/") != self.issuer:  # RFC 9207: mix-up defense
            raise FederationError("the authorization response came from another issuer")
        provider = self._discover()
        answer = self._exchange(provider, params.get("code", ""), pending.verifier)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise FederationUnavailable("the upstream provider returned no ID token")
        claims = self._verify(provider, id_token, pending.nonce, answer.get("access_token"))
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:  # CodeIDToken requires the claim; a name needs a non-empty one
            raise FederationError("the upstream ID token names nobody (no sub)")
        auth_time = claims.get("auth_time")
        return Subject(
            sub=sub,
            email=str(claims.get("email", "")),
            name=str(claims.get("name", "")),
            groups=tuple(_strings(claims.get(self._groups_claim))),
            business_groups=tuple(_strings(claims.get(self._business_groups_claim))),
            source=self.issuer,
            auth_time=int(auth_time) if isinstance(auth_time, int | float) else int(time.time()),
        )

    def _client(self) -> OAuth2Client:
        # A client per use: Authlib's client keeps the last token it fetched, so sharing one across concurrent
        # logins could hand one person's answer to another. Never closed: that would close the shared pool.
        return OAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret,
            token_endpoint_auth_method="client_secret_basic",
            redirect_uri=self.redirect_uri,
            scope=_SCOPE,
            code_challenge_method="S256",
            timeout=_TIMEOUT_SECONDS,
            transport=self._transport,
        )

    def _http(self) -> httpx2.Client:
        return httpx2.Client(timeout=_TIMEOUT_SECONDS, transport=self._transport)

    def _exchange(self, provider: _Provider, code: str, verifier: str) -> dict[str, Any]:
        try:
            token: dict[str, Any] = dict(
                self._client().fetch_token(
                    provider.token_endpoint, grant_type="authorization_code", code=code, code_verifier=verifier
                )
            )
        except OAuthError as exc:  # a JSON error answer: the provider refused this code
            raise FederationError(f"the upstream provider refused the code: {str(exc.error)[:100]}") from None
        except httpx2.HTTPStatusError as exc:
            raise FederationUnavailable(f"upstream token endpoint answered {exc.response.status_code}") from None
        except httpx2.HTTPError as exc:
            raise FederationUnavailable(f"upstream token endpoint unreachable: {type(exc).__name__}") from None
        except ValueError:  # Authlib: a 2xx answer that is not a JSON object
            raise FederationUnavailable("upstream token endpoint answered something other than JSON") from None
        return token

    def _verify(self, provider: _Provider, id_token: str, nonce: str, access_token: Any) -> dict[str, Any]:
        try:
            try:
                token = jwt.decode(id_token, provider.keys, algorithms=_ALGORITHMS)
            except InvalidKeyIdError:
                token = jwt.decode(id_token, self._refresh_keys(provider).keys, algorithms=_ALGORITHMS)
            claims = CodeIDToken(
                token.claims,
                token.header,
                options={
                    "iss": {"essential": True, "value": provider.issuer},
                    "aud": {"essential": True, "value": self._client_id},
                    "sub": {"essential": True},
                },
                params={
                    "nonce": nonce,
                    "client_id": self._client_id,
                    "access_token": access_token if isinstance(access_token, str) else None,
                },
            )
            claims.validate(leeway=_LEEWAY_SECONDS)
        except JoseError as exc:
            raise FederationError(f"the upstream ID token does not verify ({str(exc)[:200]})") from None
        except (ValueError, TypeError):  # a token too malformed for the library to name the error
            raise FederationError("the upstream ID token does not verify: malformed") from None
        return dict(claims)

    def _discover(self) -> _Provider:
        provider = self._provider
        if provider is None or time.monotonic() - provider.fetched_at > _DISCOVERY_TTL_SECONDS:
            provider = self._read_provider()
            self._provider = provider
        return provider

    def _refresh_keys(self, provider: _Provider) -> _Provider:
        if time.monotonic() - provider.keys_fetched_at < _KEYS_RETRY_SECONDS:
            return provider
        keys = _key_set(_json_object(self._http(), provider.jwks_uri, "key set"))
        refreshed = _Provider(**{**provider.__dict__, "keys": keys, "keys_fetched_at": time.monotonic()})
        self._provider = refreshed
        return refreshed

    def _read_provider(self) -> _Provider:
        http = self._http()
        metadata = _json_object(http, f"{self.issuer}/.well-known/openid-configuration", "discovery")
        issuer = metadata.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.issuer:
            raise FederationUnavailable("upstream provider metadata names another issuer")
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = metadata.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise FederationUnavailable(f"upstream provider metadata has no usable {name}")
            endpoints[name] = value
        keys = _key_set(_json_object(http, endpoints["jwks_uri"], "key set"))
        now = time.monotonic()
        return _Provider(issuer=issuer, keys=keys, fetched_at=now, keys_fetched_at=now, **endpoints)


def _json_object(http: httpx2.Client, url: str, what: str) -> dict[str, Any]:
    try:
        response = http.get(url)
        response.raise_for_status()
        document = response.json()
    except httpx2.HTTPStatusError as exc:
        raise FederationUnavailable(f"upstream provider {what} answered {exc.response.status_code}") from None
    except httpx2.HTTPError as exc:
        raise FederationUnavailable(f"upstream provider {what} failed: {type(exc).__name__}") from None
    except ValueError:
        raise FederationUnavailable(f"upstream provider {what} is not JSON") from None
    if not isinstance(document, dict):
        raise FederationUnavailable(f"upstream provider {what} is not a JSON object")
    return document


def _key_set(document: dict[str, Any]) -> KeySet:
    try:
        return KeySet.import_key_set(document)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise FederationUnavailable("upstream provider key set is unusable") from None


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return sorted(str(item) for item in value)
    return [str(value)] if value else []
