"""The SQL server's errors; each reaches the MCP client as a tool error with its message, never a trace.

SqlError (a ToolError)
├── SqlRejected        the statement is not allowed or does not resolve (parse, read-only, unknown table/column)
├── QueryFailed        the engine refused or failed the query (its message, cleaned of internals)
├── QueryTimedOut      the query ran past the time limit and was cancelled
├── SqlBusy            every concurrent-query slot is taken: try again (never queued)
└── EngineUnavailable  the engine cannot be reached (Trino down, the local database missing)
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

__all__ = ["EngineUnavailable", "QueryFailed", "QueryTimedOut", "SqlBusy", "SqlError", "SqlRejected"]


class SqlError(ToolError):
    """Base of the SQL server's errors."""


class SqlRejected(SqlError):
    """The statement is refused before it reaches the engine."""


class QueryFailed(SqlError):
    """The engine failed the query."""


class QueryTimedOut(SqlError):
    """The query exceeded its time limit."""


class SqlBusy(SqlError):
    """The server already runs as many queries as it allows; the caller should try again."""


class EngineUnavailable(SqlError):
    """The engine is unreachable or not set up."""
