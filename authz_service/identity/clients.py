"""Client applications: pre-registered in the directory, registered dynamically (RFC 7591), or identified by the
URL of their Client ID Metadata Document. The client id is the "client app" identity the edge policy decides on.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.oauth2.rfc6749 import ClientMixin

from authz_service.identity.errors import IdentityError
from authz_service.identity.store import IdentityStore
from portcullis_contracts.directory import Directory, DirectoryClient, verify_secret
from portcullis_contracts.json_input import InvalidJson, parse_json
from portcullis_contracts.redirects import redirect_matches, redirect_uri_problem
from portcullis_contracts.urls import URLRejected, parse_url

__all__ = [
    "DYNAMIC_CLIENT_PREFIX",
    "Client",
    "ClientRegistry",
    "is_metadata_document_url",
]

DYNAMIC_CLIENT_PREFIX = "dyn-"
_DEFAULT_SCOPE = "mcp"
_METADATA_MAX_BYTES = 5 * 1024
_METADATA_TTL_BOUNDS = (60, 86_400)
_MAX_AGE = re.compile(r"max-age=(\d+)")


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """One client application as Authlib sees it."""

    client_id: str
    name: str
    kind: str  # "directory" | "dynamic" | "metadata_document"
    token_endpoint_auth_method: str
    redirect_uris: list[str]
    grant_types: list[str]
    scope: str
    secret_hash: str = ""
    jwks: dict[str, Any] | None = None
    groups: list[str] = field(default_factory=list)
    business_groups: list[str] = field(default_factory=list)
    acts_for: list[str] = field(default_factory=list)

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Never guessed: OAuth 2.1 requires the redirect URI in every authorization request.
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        allowed = set(self.scope.split())
        requested = (scope or "").split()
        if not requested:
            return _DEFAULT_SCOPE if _DEFAULT_SCOPE in allowed else " ".join(sorted(allowed))
        if not set(requested) <= allowed:
            return None  # invalid_scope: a client never silently gets less than it asked for
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(redirect_matches(registered, redirect_uri) for registered in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.secret_hash) and verify_secret(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def is_metadata_document_url(client_id: str) -> bool:
    return client_id.startswith(("https://", "http://"))


class ClientRegistry:
    """Resolves a client id to a `Client`: the directory first, then the database, then a metadata document."""

    def __init__(
        self,
        directory: Callable[[], Directory | None],
        store: IdentityStore,
        *,
        allow_insecure_documents: bool = False,
        http: httpx.Client | None = None,
    ):
        self._directory = directory
        self._store = store
        self._allow_insecure = allow_insecure_documents
        self._http = http or httpx.Client(timeout=3.0, follow_redirects=False)

    def get(self, client_id: str) -> Client | None:
        directory = self._directory()
        if directory is not None and client_id in directory.clients:
            return _from_directory(client_id, directory.clients[client_id])
        stored = self._store.client(client_id)
        if stored is not None:
            kind, metadata, secret_hash, fresh = stored
            if fresh:
                return _from_metadata(client_id, kind, metadata, secret_hash)
        if is_metadata_document_url(client_id):
            try:
                return self._fetch_document(client_id)
            except IdentityError:
                return None
        return None

    def _fetch_document(self, url: str) -> Client:
        """Read, check and cache a Client ID Metadata Document.

        Raises:
            IdentityError: the URL or the document is not acceptable.
        """
        try:
            parts = parse_url(url)  # the client id is a trust anchor: only its one canonical spelling
        except URLRejected as exc:
            raise IdentityError(f"a client metadata document URL must be canonical: {exc}") from None
        host = parts.host.strip("[]")
        if parts.path == "/":
            raise IdentityError("a client metadata document URL needs a path")
        if parts.scheme != "https" and not (self._allow_insecure and parts.scheme == "http" and _loopback(host)):
            raise IdentityError("a client metadata document must be served over https")
        if not self._allow_insecure and _resolves_to_private(host):
            raise IdentityError("a client metadata document may not be on a private address")
        try:
            with self._http.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise IdentityError(f"client metadata document answered {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _METADATA_MAX_BYTES:
                        raise IdentityError("client metadata document is too large")
                cache_control = response.headers.get("cache-control", "")
        except httpx.HTTPError as exc:
            raise IdentityError(f"client metadata document unreachable: {type(exc).__name__}") from None
        try:
            metadata = parse_json(body, max_depth=16)
        except InvalidJson:
            raise IdentityError("client metadata document is not JSON") from None
        if not isinstance(metadata, dict) or metadata.get("client_id") != url:
            raise IdentityError("client metadata document must name its own URL as client_id")
        method = metadata.get("token_endpoint_auth_method", "none")
        if method not in ("none", "private_key_jwt") or "client_secret" in metadata:
            raise IdentityError("a metadata-document client is public or uses private_key_jwt, never a secret")
        redirect_uris = metadata.get("redirect_uris")
        if not isinstance(redirect_uris, list) or not redirect_uris:
            raise IdentityError("client metadata document lists no redirect_uris")
        for uri in redirect_uris:
            if redirect_uri_problem(uri) is not None:
                raise IdentityError(f"client metadata document has an unacceptable redirect URI {uri!r}")
        match = _MAX_AGE.search(cache_control)
        ttl = int(match.group(1)) if match else 3600
        ttl = max(_METADATA_TTL_BOUNDS[0], min(_METADATA_TTL_BOUNDS[1], ttl))
        self._store.save_client(url, "metadata_document", metadata, ttl=ttl)
        return _from_metadata(url, "metadata_document", metadata, "")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _resolves_to_private(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return True  # unresolvable: refuse rather than guess
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
            return True
    return False


def _from_directory(client_id: str, entry: DirectoryClient) -> Client:
    return Client(
        client_id=client_id,
        name=entry.name or client_id,
        kind="directory",
        token_endpoint_auth_method=entry.token_endpoint_auth_method,
        redirect_uris=list(entry.redirect_uris),
        grant_types=list(entry.grant_types),
        scope=entry.scope,
        secret_hash=entry.secret_hash,
        jwks=entry.jwks,
        groups=list(entry.groups),
        business_groups=list(entry.business_groups),
        acts_for=list(entry.acts_for),
    )


def _from_metadata(client_id: str, kind: str, metadata: dict[str, Any], secret_hash: str) -> Client:
    grant_types = [g for g in metadata.get("grant_types", ["authorization_code", "refresh_token"])]
    # Self-registered clients act for people only: never client_credentials or token exchange.
    grant_types = [g for g in grant_types if g in ("authorization_code", "refresh_token")]
    return Client(
        client_id=client_id,
        name=str(metadata.get("client_name") or client_id),
        kind=kind,
        token_endpoint_auth_method=str(metadata.get("token_endpoint_auth_method", "none")),
        redirect_uris=list(metadata.get("redirect_uris", [])),
        grant_types=grant_types,
        scope=str(metadata.get("scope") or "openid profile email offline_access mcp"),
        secret_hash=secret_hash,
        jwks=metadata.get("jwks"),
    )
