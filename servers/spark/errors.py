"""The Spark server's errors; each reaches the MCP client as a tool error with its message, never a trace.

SparkError (a ToolError)
├── InvalidRequest          a tool argument the server refuses (a malformed application id, a bad limit)
├── ApplicationNotFound     the History Server knows no application with this id
└── HistoryServerError      the History Server cannot be reached, timed out or answered with an error
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

__all__ = ["ApplicationNotFound", "HistoryServerError", "InvalidRequest", "SparkError"]


class SparkError(ToolError):
    """Base of the Spark server's errors."""


class InvalidRequest(SparkError):
    """A tool argument is refused before the History Server is asked."""


class ApplicationNotFound(SparkError):
    """No application with this id in the History Server."""


class HistoryServerError(SparkError):
    """The History Server is unreachable, too slow, or answered with an error."""
