"""What the authorization server issues: JWT access tokens (one audience each), OIDC ID tokens, opaque refresh
tokens; and the check of its own access tokens (token exchange, introspection, revocation).

Access-token claims: iss, sub, aud, exp, iat, nbf, jti, client_id, scope, email, name, groups, business_groups, and
`act` on a token obtained by token exchange (RFC 8693 §4.1).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import jwt
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749.errors import OAuth2Error

from authz_service.identity.store import IdentityStore, RefreshGrant
from authz_service.identity.subject import Subject
from portcullis_contracts.catalog import Catalog
from portcullis_contracts.resource_metadata import canonical_uri
from portcullis_contracts.urls import absolute_url_problem

__all__ = ["InvalidTargetError", "Keys", "Resources", "TokenIssuer", "server_resource"]


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 §2: the requested resource is invalid, unknown, or not allowed."""

    error = "invalid_target"


class Keys(Protocol):
    """The signing-key ring (authz_service.keys.KeyRing)."""

    def current(self) -> Any: ...

    def public_key(self, kid: str) -> Any: ...


def server_resource(gateway_url: str, server: str) -> str:
    """The canonical URI of a server behind the gateway (`portcullis_contracts.resource_metadata.canonical_uri`)."""
    return canonical_uri(gateway_url, server)


class Resources:
    """The resources (RFC 8707) tokens may be issued for: every catalog server, plus configured extras."""

    def __init__(self, gateway_url: str, catalog: Callable[[], Catalog], extra: list[str], issuer: str):
        self._gateway_url = gateway_url.rstrip("/")
        self._catalog = catalog
        self._extra = {uri.rstrip("/") for uri in extra}
        self.issuer = issuer.rstrip("/")
        self._known: frozenset[str] = frozenset()
        self._known_for: Catalog | None = None

    def check(self, values: list[str], *, required: bool = False) -> str:
        """The one resource a request names, normalized; the issuer itself when none is named.

        Raises:
            InvalidTargetError: more than one, not an absolute URI, has a fragment, or unknown.
        """
        if not values:
            if required:
                raise InvalidTargetError("The 'resource' parameter is required.")
            return self.issuer
        if len(values) > 1:
            raise InvalidTargetError("One resource per token: each MCP server is its own audience.")
        if absolute_url_problem(values[0]) is not None:  # the one strict parser: no userinfo, fragment, tricks
            raise InvalidTargetError("The resource must be a canonical absolute http(s) URI without a fragment.")
        resource = values[0].rstrip("/")
        if resource not in self.known():
            raise InvalidTargetError("Unknown resource.")  # not repeated: it may hold what an error may not carry
        return resource

    def known(self) -> frozenset[str]:
        catalog = self._catalog()
        if catalog is not self._known_for:  # built once per catalog revision, not per request
            servers = {server_resource(self._gateway_url, name) for name in catalog.servers}
            self._known = frozenset(servers | self._extra | {self.issuer})
            self._known_for = catalog
        return self._known

    def declared_downstream(self, servers: list[str]) -> frozenset[str]:
        """The resources these catalog servers declare they may exchange their callers' tokens for (their
        server.json governance `downstream_resources`, reviewed with the server), normalized. A name the catalog
        does not hold declares nothing, and an entry the strict URL parser refuses is ignored: fail closed.
        """
        catalog = self._catalog()
        declared: set[str] = set()
        for name in servers:
            entry = catalog.servers.get(name)
            for uri in entry.downstream_resources if entry is not None else ():
                if absolute_url_problem(uri) is None:
                    declared.add(uri.rstrip("/"))
        return frozenset(declared)

    def for_server(self, name_or_uri: str) -> str:
        if name_or_uri.startswith(("https://", "http://")):
            return name_or_uri.rstrip("/")
        return server_resource(self._gateway_url, name_or_uri)


class TokenIssuer:
    """Mints and checks the tokens of one issuer."""

    def __init__(
        self,
        *,
        issuer: str,
        keys: Keys,
        store: IdentityStore,
        access_ttl: int,
        refresh_ttl: int,
        now: Callable[[], float] = time.time,
    ):
        self.issuer = issuer.rstrip("/")
        self._keys = keys
        self._store = store
        self.access_ttl = access_ttl
        self._refresh_ttl = refresh_ttl
        self._now = now

    def access_token(
        self, *, subject: Subject, client_id: str, scope: str, audience: str, act: dict[str, Any] | None = None
    ) -> str:
        issued = int(self._now())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject.sub,
            "aud": audience,
            "exp": issued + self.access_ttl,
            "iat": issued,
            "nbf": issued,
            "jti": uuid.uuid4().hex,
            "client_id": client_id,
            "scope": scope,
            **subject.claims(),
        }
        if act is not None:
            payload["act"] = act
        return str(self._keys.current().sign(payload))

    def id_token(self, *, subject: Subject, client_id: str, nonce: str, access_token: str) -> str:
        """An OIDC ID token (audience: the client), with at_hash binding it to the access token."""
        issued = int(self._now())
        digest = hashlib.sha256(access_token.encode()).digest()
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject.sub,
            "aud": client_id,
            "azp": client_id,
            "exp": issued + self.access_ttl,
            "iat": issued,
            "auth_time": subject.auth_time or issued,
            "at_hash": base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode(),
            "email": subject.email,
            "name": subject.name,
            "groups": list(subject.groups),
            "business_groups": list(subject.business_groups),
        }
        if nonce:
            payload["nonce"] = nonce
        return str(self._keys.current().sign(payload))

    def respond(
        self,
        *,
        subject: Subject,
        client_id: str,
        scope: str,
        resource: str,
        refresh: bool,
        family_id: str = "",
        nonce: str = "",
        act: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A token response (RFC 6749 §5.1): access token, and a refresh and ID token when asked for."""
        access = self.access_token(subject=subject, client_id=client_id, scope=scope, audience=resource, act=act)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "scope": scope,
        }
        if refresh:
            token = secrets.token_urlsafe(32)
            grant = RefreshGrant(
                family_id=family_id or uuid.uuid4().hex,
                client_id=client_id,
                scope=scope,
                resource=resource,
                subject=subject,
                expires_at=self._now() + self._refresh_ttl,
            )
            self._store.save_refresh_token(token, grant)
            body["refresh_token"] = token
        if "openid" in scope.split() and subject.source != "client":
            body["id_token"] = self.id_token(subject=subject, client_id=client_id, nonce=nonce, access_token=access)
        return body

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a live access token this issuer signed (signature, issuer, expiry, not revoked).

        Raises:
            InvalidRequestError: anything else (the caller maps it to its own error).
        """
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.public_key(str(header.get("kid", "")))
            if key is None:
                raise InvalidRequestError("token signed by an unknown key")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp", "iat", "sub", "jti", "aud"]},
                leeway=0,
            )
        except jwt.PyJWTError as exc:
            raise InvalidRequestError(f"invalid token: {type(exc).__name__}") from None
        if self._store.access_token_revoked(str(claims["jti"])):
            raise InvalidRequestError("token revoked")
        return claims
