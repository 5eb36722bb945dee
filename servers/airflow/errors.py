"""The Airflow server's errors; each reaches the MCP client as a tool error with its message, never a trace.

AirflowError (a ToolError)
├── AirflowUnavailable   Airflow cannot be reached (down, wrong URL, timeout); the message names the URL
├── AirflowAuthFailed    the service account's login or token was refused
├── AirflowNotFound      an unknown DAG, run, task instance or try
├── AirflowRejected      Airflow refused the request (4xx); its detail is passed on in words
└── InvalidArgument      the tool's input is malformed (checked before Airflow is asked)
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

__all__ = [
    "AirflowAuthFailed",
    "AirflowError",
    "AirflowNotFound",
    "AirflowRejected",
    "AirflowUnavailable",
    "InvalidArgument",
]


class AirflowError(ToolError):
    """Base of the Airflow server's errors."""


class AirflowUnavailable(AirflowError):
    """Airflow's API cannot be reached, or answered with a server error."""


class AirflowAuthFailed(AirflowError):
    """The service account could not log in, or its token was refused."""


class AirflowNotFound(AirflowError):
    """The DAG, run, task instance or try does not exist."""


class AirflowRejected(AirflowError):
    """Airflow refused the request (a 4xx other than 401/404)."""


class InvalidArgument(AirflowError):
    """A tool argument is malformed."""
