"""The tickets MCP server: search, read, file, comment on and move tickets in Redmine or Jira.

The tracker is `PORTCULLIS_TICKETS_BACKEND` (settings.py); both map to one ticket model (model.py). Every tool
asks the policy first (`@guarded`); the three that change a ticket also ask the person to confirm (MCP
elicitation). The tracker sees one service account, so what a person files or says is signed with their
Portcullis user name in the text.

Settings: `KIT_TICKETS_*` (server_kit/README.md) and `PORTCULLIS_TICKETS_*` (settings.py), read once when the
server starts; the tracker's adapter is opened then (Jira is reached then) and closed when it stops. The guards
send the project (search, create) or the ticket key (the others) to the policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from server_kit import Caller, Kit, KitSettings, guarded
from servers.tickets.model import TicketBackend, check_text
from servers.tickets.settings import TicketsSettings, opened
from servers.tickets.settings import load_settings as load_backend_settings

__all__ = ["DEFAULT_PORT", "kit", "load_settings", "tickets_settings", "tracker"]

DEFAULT_PORT = 8304

kit = Kit(
    "tickets",
    title="Tickets",
    instructions=(
        "Tickets in the company's tracker (Redmine or Jira). Keys look like ads-42 (Redmine: #42 works too) or "
        "ADS-42 (Jira). Search first, then get a ticket for its description and comments."
    ),
)


@kit.resource
def tickets_settings() -> TicketsSettings:
    """The tracker's settings, read once from `PORTCULLIS_TICKETS_*` when the server starts.

    Raises:
        BackendError: invalid or incomplete settings (the message names the variable).
    """
    return load_backend_settings()


@kit.resource
def tracker(settings: TicketsSettings) -> Iterator[TicketBackend]:
    """The configured tracker's adapter, shared by every call and closed when the server stops.

    Raises:
        BackendError: the settings are incomplete, or Jira refused the credentials.
        BackendUnavailable: Jira cannot be reached.
    """
    with opened(settings.check()) as backend:
        yield backend


def _signed(text: str, caller: Caller, verb: str) -> str:
    signature = f"({verb} through Portcullis by {caller.user})"
    return f"{text.rstrip()}\n\n{signature}" if text.strip() else signature


@kit.tool()
@guarded(arguments=["project"])
def search(
    backend: TicketBackend, query: str = "", project: str | None = None, status: str = "any", limit: int = 20
) -> list[dict[str, Any]]:
    """Find tickets whose text contains `query`, optionally in one project and with a status ("open", "closed",
    "any" or a status name), most recently updated first (at most `limit`, 1-100)."""
    return [ticket.summary_dict() for ticket in backend.search(query, project=project, status=status, limit=limit)]


@kit.tool()
@guarded(arguments=["key"])
def get(backend: TicketBackend, key: str) -> dict[str, Any]:
    """One ticket with its description and comments."""
    return backend.get(key).as_dict()


@kit.tool(mutating=True)
@guarded(arguments=["project"])
def create(
    caller: Caller,
    backend: TicketBackend,
    project: str,
    summary: str,
    description: str = "",
    type: str | None = None,
) -> dict[str, Any]:
    """File a new ticket in `project` (of the tracker's default type unless `type` names one, e.g. Bug)."""
    ticket = backend.create(project, summary, _signed(description, caller, "filed"), issue_type=type)
    return ticket.as_dict()


@kit.tool(mutating=True)
@guarded(arguments=["key"])
def comment(caller: Caller, backend: TicketBackend, key: str, body: str) -> dict[str, Any]:
    """Add a comment to a ticket."""
    body = check_text("comment", body)
    added = backend.comment(key, _signed(body, caller, "written"))
    return {"key": key, "author": added.author, "body": added.body, "created": added.created}


@kit.tool(mutating=True)
@guarded(arguments=["key"])
def transition(backend: TicketBackend, key: str, to_status: str) -> dict[str, Any]:
    """Move a ticket to another status (e.g. "In Progress", "Closed"); the error lists the statuses it can move
    to when that one is not reachable."""
    return backend.transition(key, to_status).as_dict()


def load_settings(**overrides: Any) -> KitSettings:
    """The server's kit settings from `KIT_TICKETS_*` (keyword arguments win; the port defaults to 8304), with
    the gateway's Host accepted.

    Raises:
        ConfigurationError: the settings are refused (no AuthZEN credential, a URL that is not absolute, ...).
    """
    return KitSettings.behind_gateway(kit.name, default_port=DEFAULT_PORT, **overrides)
