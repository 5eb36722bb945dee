"""The tickets MCP server: search, read, file, comment on and move tickets in Redmine or Jira.

The tracker is `PORTCULLIS_TICKETS_BACKEND` (settings.py); both map to one ticket model (model.py). Every tool
asks the policy first (`@guarded`); the three that change a ticket also ask the person to confirm (MCP
elicitation). The tracker sees one service account, so what a person files or says is signed with their
Portcullis user name in the text.

Settings: `KIT_TICKETS_*` (server_kit/README.md) and `PORTCULLIS_TICKETS_*` (settings.py). The guards send the
project (search, create) or the ticket key (the others) to the policy.
"""

from __future__ import annotations

from typing import Any

from server_kit import Caller, Kit, KitSettings, guarded
from servers.tickets.model import check_text
from servers.tickets.settings import load_settings as load_backend_settings
from servers.tickets.settings import opened

__all__ = ["DEFAULT_PORT", "kit", "load_settings"]

DEFAULT_PORT = 8304

kit = Kit(
    "tickets",
    title="Tickets",
    instructions=(
        "Tickets in the company's tracker (Redmine or Jira). Keys look like ads-42 (Redmine: #42 works too) or "
        "ADS-42 (Jira). Search first, then get a ticket for its description and comments."
    ),
)


def _signed(text: str, caller: Caller, verb: str) -> str:
    signature = f"({verb} through Portcullis by {caller.user})"
    return f"{text.rstrip()}\n\n{signature}" if text.strip() else signature


@kit.tool()
@guarded(arguments=["project"])
def search(query: str = "", project: str | None = None, status: str = "any", limit: int = 20) -> list[dict[str, Any]]:
    """Find tickets whose text contains `query`, optionally in one project and with a status ("open", "closed",
    "any" or a status name), most recently updated first (at most `limit`, 1-100)."""
    with opened(load_backend_settings()) as backend:
        return [ticket.summary_dict() for ticket in backend.search(query, project=project, status=status, limit=limit)]


@kit.tool()
@guarded(arguments=["key"])
def get(key: str) -> dict[str, Any]:
    """One ticket with its description and comments."""
    with opened(load_backend_settings()) as backend:
        return backend.get(key).as_dict()


@kit.tool(mutating=True)
@guarded(arguments=["project"])
def create(
    caller: Caller, project: str, summary: str, description: str = "", type: str | None = None
) -> dict[str, Any]:
    """File a new ticket in `project` (of the tracker's default type unless `type` names one, e.g. Bug)."""
    with opened(load_backend_settings()) as backend:
        ticket = backend.create(project, summary, _signed(description, caller, "filed"), issue_type=type)
        return ticket.as_dict()


@kit.tool(mutating=True)
@guarded(arguments=["key"])
def comment(caller: Caller, key: str, body: str) -> dict[str, Any]:
    """Add a comment to a ticket."""
    body = check_text("comment", body)
    with opened(load_backend_settings()) as backend:
        added = backend.comment(key, _signed(body, caller, "written"))
        return {"key": key, "author": added.author, "body": added.body, "created": added.created}


@kit.tool(mutating=True)
@guarded(arguments=["key"])
def transition(key: str, to_status: str) -> dict[str, Any]:
    """Move a ticket to another status (e.g. "In Progress", "Closed"); the error lists the statuses it can move
    to when that one is not reachable."""
    with opened(load_backend_settings()) as backend:
        return backend.transition(key, to_status).as_dict()


def load_settings(**overrides: Any) -> KitSettings:
    """The server's kit settings from `KIT_TICKETS_*` (keyword arguments win; the port defaults to 8304), with
    the gateway's Host accepted.

    Raises:
        ConfigurationError: the settings are refused (no AuthZEN credential, a URL that is not absolute, ...).
    """
    return KitSettings.behind_gateway(kit.name, default_port=DEFAULT_PORT, **overrides)
