"""The OAuth 2.1 authorization server on Authlib: grants, client authentication, registration (RFC 7591),
revocation (RFC 7009), introspection (RFC 7662), and the adapter from already-read HTTP requests.

The RFC 9207 `iss` parameter is added by the routes to every redirect of the authorization endpoint (success and
error alike); Authlib's IssuerParameter extension expects a framework response object.

Authlib is synchronous; the HTTP routes read the request, then run these calls on a worker thread.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from authlib.oauth2 import rfc6749
from authlib.oauth2.rfc6749 import JsonPayload, JsonRequest, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint, InvalidRedirectURIError
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc.jwk import KeySet

from authz_service.identity.clients import DYNAMIC_CLIENT_PREFIX, Client, ClientRegistry
from authz_service.identity.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
    S256CodeChallenge,
    TokenExchangeGrant,
)
from authz_service.identity.revocations import FEED_PATH
from authz_service.identity.store import IdentityStore
from authz_service.identity.subject import Subject
from authz_service.identity.tokens import Resources, TokenIssuer
from portcullis_contracts.directory import TOKEN_EXCHANGE_GRANT, hash_secret
from portcullis_contracts.redirects import redirect_uri_problem
from portcullis_contracts.revocations import FEED_METADATA_KEY

__all__ = ["SCOPES", "AuthorizationServer", "OAuthResponse", "form_request", "json_request"]

SCOPES = ["openid", "profile", "email", "offline_access", "mcp"]
OAuthResponse = tuple[int, Any, list[tuple[str, str]]]


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]):
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, method: str, uri: str, headers: Mapping[str, str], pairs: list[tuple[str, str]]):
        super().__init__(method=method, uri=uri)
        self.headers = headers  # case-insensitive (Starlette's Headers): Authlib reads "Authorization"
        self.payload = _Payload(pairs)
        self.resource = ""
        self.subject_claims: dict[str, Any] = {}

    @property
    def args(self) -> dict[str, str]:
        return dict(self.payload.data) if self.method == "GET" else {}

    @property
    def form(self) -> dict[str, str]:
        return dict(self.payload.data) if self.method == "POST" else {}


def form_request(method: str, uri: str, headers: Mapping[str, str], pairs: list[tuple[str, str]]) -> OAuth2Request:
    """An Authlib request from a request already read: query pairs for GET, form pairs for POST."""
    return _Request(method, uri, headers, pairs)


class _Json(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: dict[str, Any]):
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


def json_request(uri: str, headers: Mapping[str, str], data: dict[str, Any]) -> JsonRequest:
    request = JsonRequest("POST", uri)
    request.headers = headers
    request.payload = _Json(data)
    return request


class _PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt (RFC 7523 §2.2): the client signs an assertion with a key its registration publishes."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, audiences: list[str], store: IdentityStore):
        super().__init__(validate_jti=True, leeway=30)
        self._audiences = audiences
        self._store = store

    def get_audiences(self) -> list[str]:
        return self._audiences

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        expires = float(claims.get("exp", time.time() + 300)) + 60
        return self._store.use_assertion(f"{claims['sub']}:{jti}"[:128], expires)

    def resolve_client_public_key(self, client: Client) -> KeySet:
        return KeySet.import_key_set(client.jwks or {"keys": []})  # type: ignore[arg-type]


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return _Presented(self.server, token_string)

    def revoke_token(self, token: _Presented, request: Any) -> None:
        token.revoke(request.client)


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """Only confidential clients (resource servers, agents) may introspect."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return _Presented(self.server, token_string)

    def check_permission(self, token: _Presented, client: Client, request: Any) -> bool:
        return True

    def introspect_token(self, token: _Presented) -> dict[str, Any]:
        return token.introspection()


class _Presented:
    """A token presented to revocation or introspection: our JWT access token, or one of our refresh tokens."""

    def __init__(self, server: AuthorizationServer, value: str):
        self._server = server
        self._value = value
        self._claims: dict[str, Any] | None = None
        self._refresh = None
        if value.count(".") == 2:
            try:
                self._claims = server.tokens.verify(value)
            except rfc6749.InvalidRequestError:
                self._claims = None
        else:
            self._refresh = server.store.refresh_token(value)

    def check_client(self, client: Client) -> bool:
        # RFC 7009 §2.1: a client may revoke only its own tokens; anything else is silently ignored.
        return True

    def is_expired(self) -> bool:
        return self._claims is None and self._refresh is None

    def is_revoked(self) -> bool:
        return False

    def revoke(self, client: Client) -> None:
        if self._claims is not None and self._claims.get("client_id") == client.client_id:
            self._server.store.revoke_access_token(str(self._claims["jti"]), float(self._claims["exp"]))
        elif self._refresh is not None:
            self._server.store.revoke_refresh_token(self._value, client.client_id)

    def introspection(self) -> dict[str, Any]:
        if self._claims is not None:
            keys = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "email", "groups")
            body = {key: self._claims[key] for key in keys if key in self._claims}
            body.update(token_type="Bearer", business_groups=self._claims.get("business_groups", []))
            if "act" in self._claims:
                body["act"] = self._claims["act"]
            return body
        assert self._refresh is not None
        return {
            "client_id": self._refresh.client_id,
            "sub": self._refresh.subject.sub,
            "scope": self._refresh.scope,
            "aud": self._refresh.resource,
            "exp": int(self._refresh.expires_at),
            "token_type": "refresh_token",
        }


class _Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    """Open dynamic registration (MCP clients register themselves). Registered clients act for people only
    (authorization code + refresh); the edge policy admits them where a server allows "dynamic" clients.
    """

    def authenticate_token(self, request: Any) -> bool:
        return True

    def get_server_metadata(self) -> dict[str, Any]:
        return {
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        }

    def generate_client_id(self, request: Any) -> str:
        return DYNAMIC_CLIENT_PREFIX + secrets.token_urlsafe(16)

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        info: dict[str, Any] = super().generate_client_info(request)
        if request.payload.data.get("token_endpoint_auth_method", "client_secret_basic") == "none":
            info.pop("client_secret")
            info.pop("client_secret_expires_at")
        return info

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        # Redirect URIs first, so that a bad one is invalid_redirect_uri (RFC 7591 §3.2.2), not a generic error.
        uris = request.payload.data.get("redirect_uris")
        if not isinstance(uris, list) or not uris:
            raise InvalidRedirectURIError("redirect_uris is required (a non-empty list)")
        for index, uri in enumerate(uris):
            problem = redirect_uri_problem(uri)
            if problem is not None:  # the URI itself is not repeated: it may hold what an error may not carry
                raise InvalidRedirectURIError(f"redirect_uris[{index}]: {problem}")
        metadata: dict[str, Any] = super().extract_client_metadata(request)
        return metadata

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> Client:
        metadata = {
            **client_metadata,
            "token_endpoint_auth_method": client_metadata.get("token_endpoint_auth_method", "client_secret_basic"),
            "grant_types": client_metadata.get("grant_types", ["authorization_code", "refresh_token"]),
        }
        secret = client_info.get("client_secret")
        self.server.store.save_client(
            client_info["client_id"], "dynamic", metadata, secret_hash=hash_secret(secret) if secret else ""
        )
        client: Client | None = self.server.query_client(client_info["client_id"])
        assert client is not None
        return client


class AuthorizationServer(rfc6749.AuthorizationServer):  # type: ignore[misc]
    """One issuer's authorization server; shared state lives in `store`, so every worker process can run one."""

    def __init__(
        self,
        *,
        issuer: str,
        clients: ClientRegistry,
        store: IdentityStore,
        tokens: TokenIssuer,
        resources: Resources,
        code_ttl: int,
        refresh_subject: Callable[[Subject], Subject | None],
    ):
        super().__init__(scopes_supported=SCOPES)
        self.issuer = issuer.rstrip("/")
        self.clients = clients
        self.store = store
        self.tokens = tokens
        self.resources = resources
        self.code_ttl = code_ttl
        self._refresh_subject = refresh_subject
        token_endpoint = f"{self.issuer}/token"
        self.register_client_auth_method("private_key_jwt", _PrivateKeyJwt([token_endpoint, self.issuer], store))
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(TokenExchangeGrant)
        self.register_endpoint(_Revocation)
        self.register_endpoint(_Introspection)
        self.register_endpoint(_Registration)

    def current_subject(self, subject: Subject) -> Subject | None:
        """The subject as the identity source sees it now (groups may have changed since the login)."""
        return self._refresh_subject(subject)

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        pass  # refresh tokens are stored when minted; access tokens are self-contained

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request

    def create_json_request(self, request: Any) -> JsonRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> OAuthResponse:
        return status, body, list(headers)

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 / OIDC discovery metadata."""
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "registration_endpoint": f"{base}/register",
            "revocation_endpoint": f"{base}/revoke",
            FEED_METADATA_KEY: f"{base}{FEED_PATH}",
            "introspection_endpoint": f"{base}/introspect",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                TOKEN_EXCHANGE_GRANT,
            ],
            "token_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
            "revocation_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": True,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "email", "name", "groups", "business_groups"],
        }
