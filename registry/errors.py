"""Errors the registry raises on purpose; the API maps each to its HTTP status in one place (`api.py`).

RegistryError
├── ConfigurationError  the registry refuses to start with these settings (also a ValueError, so pydantic
│                       reports it as a settings validation error)
├── LoginFailed         400  the web sign-in did not complete (the UI shows its message)
│   └── LoginUnavailable  502  the authorization server cannot be used now (its fault, not the person's)
├── InvalidRequest      400  malformed input (not JSON, bad namespace, bad cursor, impossible transition)
├── Unauthenticated     401  no or invalid bearer token
├── Forbidden           403  the policy engine said no (with its reason code)
├── NotFound            404  no such server or version
├── Conflict            409  duplicate version, a gateway route taken by another server, missing reviews
├── PayloadTooLarge     413  body over the configured limit
├── SchemaViolation     422  server.json does not validate (every error with its JSON path)
├── AuthzUnavailable    503  the authorization service cannot be asked (fail closed: nothing is written)
└── RevocationsUnavailable 503  whether a token was revoked cannot be known now (fail closed)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthzUnavailable",
    "ConfigurationError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "LoginFailed",
    "LoginUnavailable",
    "NotFound",
    "PayloadTooLarge",
    "RegistryError",
    "RevocationsUnavailable",
    "SchemaViolation",
    "Unauthenticated",
]


class RegistryError(Exception):
    """Base class; `status` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigurationError(RegistryError, ValueError):
    """The registry refuses to start with these settings."""


class LoginFailed(RegistryError):
    """The sign-in did not complete; the message is safe to show."""

    status = 400


class LoginUnavailable(LoginFailed):
    """The authorization server cannot be used now (its fault, not the person's); the message is safe to show."""

    status = 502


class InvalidRequest(RegistryError):
    status = 400


class Unauthenticated(RegistryError):
    status = 401


class Forbidden(RegistryError):
    status = 403


class NotFound(RegistryError):
    status = 404


class Conflict(RegistryError):
    status = 409


class PayloadTooLarge(RegistryError):
    status = 413


class SchemaViolation(RegistryError):
    """server.json failed validation; `errors` lists `{"path": "$.x.y", "message": ...}`."""

    status = 422

    def __init__(self, message: str, errors: list[dict[str, str]]):
        super().__init__(message, errors=errors)
        self.errors = errors


class AuthzUnavailable(RegistryError):
    status = 503


class RevocationsUnavailable(RegistryError):
    status = 503
