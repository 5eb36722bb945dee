"""Errors raised by the server kit.

KitError
├── ConfigurationError   settings the server refuses to start with (missing, placeholder, conflicting)
├── GuardError           a permission decorator misused; raised when the decorator is applied (import time)
├── UnguardedToolError   a tool that is neither guarded nor public: the server refuses to start
├── Unauthenticated      no bearer token, or one that failed verification (HTTP 401; 403 for a missing scope)
├── IssuerUnavailable    the issuer's keys cannot be fetched, so no token can be verified now (HTTP 503)
├── AccessDenied         a tool call the policy denied, or that could not be decided (fail closed)
├── NotConfirmed         a mutating tool the person did not confirm, or could not be asked to confirm
└── DownstreamAuthError  no downstream token: token exchange not configured, refused, or the issuer is down
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

__all__ = [
    "AccessDenied",
    "ConfigurationError",
    "DownstreamAuthError",
    "GuardError",
    "IssuerUnavailable",
    "KitError",
    "NotConfirmed",
    "Unauthenticated",
    "UnguardedToolError",
]


class KitError(Exception):
    """Base class of every error the server kit raises on purpose."""


class ConfigurationError(KitError):
    """The server refuses to start with these settings."""


class GuardError(KitError, TypeError):
    """A permission decorator (`guarded`, `public`, `Kit.tool`) was misused."""


class UnguardedToolError(KitError):
    """Some tools are neither guarded nor public; the server refuses to start.

    Attributes:
        tools: the names of the offending tools, sorted.
    """

    def __init__(self, tools: list[str]):
        self.tools = sorted(tools)
        names = ", ".join(self.tools)
        super().__init__(
            f"refusing to start: tool(s) {names} are neither guarded nor public; decorate each with "
            "@guarded(...) or @public(reason='...')"
        )


class Unauthenticated(KitError):
    """The request carries no valid bearer token for this server.

    Attributes:
        error: the RFC 6750 error code (`invalid_token`, `invalid_request`, `insufficient_scope`), or "" when no
            token was presented.
    """

    def __init__(self, message: str, *, error: str = "invalid_token"):
        super().__init__(message)
        self.error = error


class IssuerUnavailable(KitError):
    """The issuer's JWKS cannot be fetched and the token's key is not cached: nothing can be verified now."""


class AccessDenied(KitError, ToolError):
    """A tool call was denied. The client receives it as an MCP tool error (`isError: true`) with the reason.

    Attributes:
        reason: the policy's reason code (`group_required`, ...) or the kit's (`authz_unavailable`, ...).
        decision_id: the authorization decision's id, "" when no decision could be obtained.
    """

    def __init__(self, message: str, *, reason: str, decision_id: str = ""):
        super().__init__(message)
        self.reason = reason
        self.decision_id = decision_id


class NotConfirmed(KitError, ToolError):
    """A mutating tool did not run: the person declined, or the client cannot ask and the policy did not waive
    the confirmation. The client receives it as an MCP tool error with the reason.

    Attributes:
        reason: `declined`, `cancelled` or `confirmation_required`.
    """

    def __init__(self, message: str, *, reason: str, decision_id: str = ""):
        super().__init__(message)
        self.reason = reason
        self.decision_id = decision_id


class DownstreamAuthError(KitError, ToolError):
    """No token for a downstream resource could be obtained; the tool call fails with this message."""
