"""The one ticket model every tracker maps to, and the interface each tracker's adapter implements.

Timestamps are kept as the tracker wrote them (ISO 8601 strings); names of people are display names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from servers.tickets.errors import InvalidTicketInput

__all__ = [
    "MAX_LIMIT",
    "MAX_SUMMARY",
    "Comment",
    "Ticket",
    "TicketBackend",
    "check_limit",
    "check_text",
    "status_filter",
]

MAX_LIMIT = 100
MAX_SUMMARY = 255  # Redmine's subject column; Jira's summary limit is the same
STATUS_FILTERS = ("open", "closed", "any")


@dataclass(frozen=True)
class Comment:
    """One comment on a ticket."""

    author: str
    body: str
    created: str


@dataclass(frozen=True)
class Ticket:
    """A ticket, whichever tracker holds it."""

    key: str
    project: str
    summary: str
    description: str
    status: str
    type: str
    priority: str
    assignee: str | None
    reporter: str
    created: str
    updated: str
    url: str
    comments: tuple[Comment, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """The ticket as plain JSON-ready data (comments as a list of dicts)."""
        data = asdict(self)
        data["comments"] = [asdict(comment) for comment in self.comments]
        return data

    def summary_dict(self) -> dict[str, Any]:
        """The fields a search result shows (no description, no comments)."""
        return {
            "key": self.key,
            "project": self.project,
            "summary": self.summary,
            "status": self.status,
            "type": self.type,
            "priority": self.priority,
            "assignee": self.assignee,
            "updated": self.updated,
            "url": self.url,
        }


class TicketBackend(Protocol):
    """What the tools need from a ticket tracker. Every method raises a `TicketError` on failure."""

    name: str

    def search(
        self, query: str = "", *, project: str | None = None, status: str = "any", limit: int = 20
    ) -> list[Ticket]:
        """Tickets matching the text `query` (anywhere) and the filters, most recently updated first.

        `status` is "open", "closed", "any" or a status name.
        """
        ...

    def get(self, key: str) -> Ticket:
        """The ticket with its comments."""
        ...

    def create(self, project: str, summary: str, description: str = "", issue_type: str | None = None) -> Ticket:
        """A new ticket in `project` (of the tracker's default type unless `issue_type` names one)."""
        ...

    def comment(self, key: str, body: str) -> Comment:
        """Add a comment to the ticket."""
        ...

    def transition(self, key: str, to_status: str) -> Ticket:
        """Move the ticket to `to_status` (a status name, any case) and return it as it is now."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def check_limit(limit: int) -> int:
    """`limit` when it is between 1 and MAX_LIMIT.

    Raises:
        InvalidTicketInput: out of range.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidTicketInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def check_text(name: str, value: str, *, max_length: int | None = None) -> str:
    """`value` stripped, when it is not empty (and not longer than `max_length`).

    Raises:
        InvalidTicketInput: empty or too long.
    """
    value = value.strip()
    if not value:
        raise InvalidTicketInput(f"{name} must not be empty")
    if max_length is not None and len(value) > max_length:
        raise InvalidTicketInput(f"{name} is {len(value)} characters long; the limit is {max_length}")
    return value


def status_filter(status: str | None) -> str:
    """The status filter normalised: "open", "closed", "any" (also for None or ""), or a status name as given."""
    value = (status or "any").strip()
    return value.lower() if value.lower() in STATUS_FILTERS else value
