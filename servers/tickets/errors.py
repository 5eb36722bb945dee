"""Errors of the tickets server. Each is an MCP tool error: the client sees its one-line message, never a trace.

TicketError (ToolError)
├── TicketNotFound       no ticket with that key (or not visible to the service account)
├── InvalidTicketInput   a malformed key, an unknown project, type or status, an empty summary
├── InvalidTransition    the ticket cannot move to that status now; the message lists where it can go
├── BackendUnavailable   the tracker cannot be reached (the message names its URL)
└── BackendError         the tracker answered with an error (refused credentials, HTTP 5xx, bad configuration)
"""

from __future__ import annotations

from collections.abc import Sequence

from mcp.server.mcpserver.exceptions import ToolError

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "InvalidTicketInput",
    "InvalidTransition",
    "TicketError",
    "TicketNotFound",
]


class TicketError(ToolError):
    """Base class of every error the tickets server raises on purpose."""


class TicketNotFound(TicketError):
    """No ticket with that key.

    Attributes:
        key: the key as the caller gave it.
    """

    def __init__(self, key: str):
        super().__init__(f"no ticket {key}")
        self.key = key


class InvalidTicketInput(TicketError):
    """The caller's input cannot be used (a malformed key, an unknown project, type or status)."""


class InvalidTransition(TicketError):
    """The ticket cannot move to the requested status from where it is.

    Attributes:
        allowed: the statuses the ticket can move to now.
    """

    def __init__(self, key: str, current: str, target: str, allowed: Sequence[str]):
        choices = ", ".join(allowed) if allowed else "none"
        super().__init__(f"{key} cannot move from {current!r} to {target!r}; allowed next statuses: {choices}")
        self.allowed = list(allowed)


class BackendUnavailable(TicketError):
    """The ticket tracker cannot be reached."""


class BackendError(TicketError):
    """The ticket tracker answered with an error, or is not configured."""
