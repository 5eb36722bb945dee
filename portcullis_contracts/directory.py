"""The embedded identity directory: users with groups and business groups, and registered client applications.

It is the identity source of the built-in authorization server for local use; production federates the login
to the company's OIDC provider (`federation.py`) and keeps only the client applications here.

Secrets are stored as scrypt hashes (`hash_secret`), never in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from portcullis_contracts.redirects import curated_redirect_uri_problem

__all__ = [
    "TOKEN_EXCHANGE_GRANT",
    "Directory",
    "DirectoryClient",
    "DirectoryError",
    "DirectoryUser",
    "hash_secret",
    "load_directory",
    "verify_secret",
]

# Identifiers the authorization server assigns itself: a directory may not claim them.
_RESERVED_CLIENT_PREFIXES = ("dyn-", "http://", "https://")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
_CLIENT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class DirectoryError(Exception):
    """The directory file is missing or invalid, or names no such user or client."""


def hash_secret(secret: str) -> str:
    """A salted scrypt hash of a password or client secret, as stored in the directory and the database."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_secret(secret: str, stored: str) -> bool:
    """Whether `secret` matches a `hash_secret` value; a malformed stored value never matches."""
    try:
        scheme, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt), dklen=len(expected), **_SCRYPT)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


class DirectoryUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    email: str
    groups: list[str] = Field(default_factory=list)
    business_groups: list[str] = Field(default_factory=list)
    # No hash: the user cannot sign in on the login page (tokens only through `portcullis token`).
    password_hash: str = ""


class DirectoryClient(BaseModel):
    """A pre-registered client application: an AI client, an agent platform, or a server acting for its users."""

    model_config = ConfigDict(extra="forbid")
    name: str = ""
    # none = a public client (PKCE protects its codes); the others authenticate at the token endpoint.
    token_endpoint_auth_method: Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"] = "none"
    secret_hash: str = ""
    jwks: dict[str, Any] | None = None
    redirect_uris: list[str] = Field(default_factory=list)
    grant_types: list[str] = Field(default_factory=lambda: ["authorization_code", "refresh_token"])
    scope: str = "openid profile email offline_access mcp"
    # The identity of a client acting on its own (client_credentials): its groups and business groups.
    groups: list[str] = Field(default_factory=list)
    business_groups: list[str] = Field(default_factory=list)
    # Token exchange: the servers this client runs as (route names, or absolute resource URIs). A subject token
    # must have been issued for one of them: a server exchanges only the tokens it received.
    acts_for: list[str] = Field(default_factory=list)

    @field_validator("redirect_uris")
    @classmethod
    def _canonical_redirects(cls, value: list[str]) -> list[str]:
        # The same rule as dynamic registration: a directory entry that could never match strictly is an error
        # at load time, not a client that silently cannot sign in.
        for uri in value:
            problem = curated_redirect_uri_problem(uri)
            if problem is not None:
                raise ValueError(f"redirect URI {uri!r}: {problem}")
        return value

    @field_validator("grant_types")
    @classmethod
    def _known_grants(cls, value: list[str]) -> list[str]:
        known = {"authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE_GRANT}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown grant types {unknown}")
        return value


class Directory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: dict[str, DirectoryUser]
    clients: dict[str, DirectoryClient] = Field(default_factory=dict)

    @field_validator("clients")
    @classmethod
    def _valid_clients(cls, value: dict[str, DirectoryClient]) -> dict[str, DirectoryClient]:
        for client_id, client in value.items():
            if client_id in ("dynamic", "metadata_document"):
                raise ValueError(f"client id {client_id!r} is reserved: policies use it for self-registered clients")
            if client_id.startswith(_RESERVED_CLIENT_PREFIXES) or not _CLIENT_NAME.fullmatch(client_id):
                raise ValueError(f"client id {client_id!r}: lowercase letters, digits, '.', '_', '-' only")
            if client.token_endpoint_auth_method.startswith("client_secret") and not client.secret_hash:
                raise ValueError(f"client {client_id!r} authenticates with a secret but has no secret_hash")
            if client.token_endpoint_auth_method == "private_key_jwt" and not client.jwks:
                raise ValueError(f"client {client_id!r} uses private_key_jwt but has no jwks")
            if client.token_endpoint_auth_method == "none" and (
                {"client_credentials", TOKEN_EXCHANGE_GRANT} & set(client.grant_types)
            ):
                raise ValueError(f"client {client_id!r} is public: it cannot use client_credentials or token exchange")
        return value

    def user(self, name: str) -> DirectoryUser:
        try:
            return self.users[name]
        except KeyError:
            raise DirectoryError(
                f"no user {name!r} in the directory (known: {', '.join(sorted(self.users))})"
            ) from None

    def client(self, name: str) -> DirectoryClient:
        try:
            return self.clients[name]
        except KeyError:
            raise DirectoryError(
                f"no client {name!r} in the directory (known: {', '.join(sorted(self.clients))})"
            ) from None

    def authenticate(self, name: str, password: str) -> DirectoryUser | None:
        """The user whose password this is; None for an unknown user, a wrong password or no password set.

        An unknown user costs the same hash as a known one, so timing does not reveal who exists.
        """
        user = self.users.get(name)
        stored = user.password_hash if user is not None else ""
        matched = verify_secret(password, stored or _DUMMY_HASH)
        return user if user is not None and stored and matched else None


_DUMMY_HASH = "scrypt$" + base64.b64encode(b"\0" * 16).decode() + "$" + base64.b64encode(b"\0" * 32).decode()


def load_directory(path: Path) -> Directory:
    """Read and validate the directory file.

    Raises:
        DirectoryError: unreadable or invalid.
    """
    try:
        return Directory.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise DirectoryError(f"invalid directory {path}: {exc}") from None
