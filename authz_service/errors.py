"""Errors raised by the authorization service.

AuthzError
├── PolicyLoadError      a policy set failed to load (file, line, column in the message)
├── ConfigurationError   settings that must not be used (placeholder secrets, conflicts)
│   └── KeyRingError     the signing key directory cannot be used (`keys.py`)
├── CasesError           a policy-case file cannot be read or run (`policy_tools.py`)
├── PortInUseError       a port the service needs is taken; also an OSError (`worker.py`)
├── McpRequestError      400  the edge refuses a malformed MCP message; also a ValueError (`mcp_request.py`)
├── AuthzenError         an AuthZEN request error with its HTTP status (`authzen.py`, mapped in `http_app.py`)
└── IdentityError        the authorization server cannot accept a request or a document (`identity/errors.py`)
    └── FederationError, FederationUnavailable (see there)

Each lives next to the code that raises it; this module holds the base and the errors shared across modules.

The catalog's own error, `portcullis_contracts.catalog.CatalogError`, belongs to the catalog contract that the
registry and the gateway share: it is not an `AuthzError`, so the service's entry points catch both.
"""

from __future__ import annotations

__all__ = ["AuthzError", "ConfigurationError", "PolicyLoadError"]


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


class ConfigurationError(AuthzError):
    """The service refuses to start with these settings."""
