"""Errors raised by the authorization service.

AuthzError
├── PolicyLoadError      a policy set failed to load (file, line, column in the message)
├── CatalogError         the catalog could not be read or is invalid
└── ConfigurationError   settings that must not be used (placeholder secrets, conflicts)
"""

from __future__ import annotations

__all__ = ["AuthzError", "CatalogError", "ConfigurationError", "PolicyLoadError"]


class AuthzError(Exception):
    """Base class of every error the authorization service raises on purpose."""


class PolicyLoadError(AuthzError):
    """A policy set failed to load; the previous revision stays in force.

    Attributes:
        file: the policy file at fault, when known.
        line: 1-based line, when known.
        column: 1-based column, when known.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.file = file
        self.line = line
        self.column = column


class CatalogError(AuthzError):
    """The catalog of servers could not be read or failed validation."""


class ConfigurationError(AuthzError):
    """The service refuses to start with these settings."""
