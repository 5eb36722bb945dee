"""The Jira adapter: the `jira` client (REST API v2), mapped to the ticket model.

A ticket's key is Jira's own (`ADS-42`, any case accepted). Text search uses JQL `text ~ "..."`; the status
filters "open" and "closed" use the status category (`Done` is closed).

`str(JIRAError)` carries the request's headers, credentials included, so this module reads only an error's
status code and text, and never chains it (`from None`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from servers.tickets.errors import (
    BackendError,
    BackendUnavailable,
    InvalidTicketInput,
    InvalidTransition,
    TicketNotFound,
)
from servers.tickets.model import (
    MAX_SUMMARY,
    Comment,
    Ticket,
    check_limit,
    check_text,
    status_filter,
)

__all__ = ["DEFAULT_ISSUE_TYPE", "JiraAdapter", "comment_from_jira", "jql_for", "parse_key", "ticket_from_jira"]

DEFAULT_ISSUE_TYPE = "Task"
_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-[1-9][0-9]*$")
_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SEARCH_FIELDS = "project,summary,description,status,issuetype,priority,assignee,reporter,created,updated"
_MAX_ERROR_TEXT = 300
_T = TypeVar("_T")


def parse_key(key: str) -> str:
    """A Jira issue key, upper-cased (`ads-42` -> `ADS-42`).

    Raises:
        InvalidTicketInput: not of the form PROJECT-NUMBER.
    """
    normalized = key.strip().upper()
    if not _KEY.match(normalized):
        raise InvalidTicketInput(f"{key!r} is not a ticket key: use <PROJECT>-<number> (ADS-42)")
    return normalized


def _project_key(project: str) -> str:
    normalized = project.strip().upper()
    if not _PROJECT.match(normalized):
        raise InvalidTicketInput(f"{project!r} is not a Jira project key (letters, digits and '_', e.g. ADS)")
    return normalized


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def jql_for(query: str = "", *, project: str | None = None, status: str = "any") -> str:
    """The JQL of a search: text anywhere, a project key, a status filter; most recently updated first.

    Raises:
        InvalidTicketInput: a project that is not a project key.
    """
    clauses: list[str] = []
    if project:
        clauses.append(f"project = {_project_key(project)}")
    if query.strip():
        clauses.append(f"text ~ {_quote(query.strip())}")
    wanted = status_filter(status)
    if wanted == "open":
        clauses.append("statusCategory != Done")
    elif wanted == "closed":
        clauses.append("statusCategory = Done")
    elif wanted != "any":
        clauses.append(f"status = {_quote(wanted)}")
    order = "ORDER BY updated DESC"
    return f"{' AND '.join(clauses)} {order}" if clauses else order


def _display(person: Any) -> str | None:
    name = getattr(person, "displayName", None) or getattr(person, "name", None)
    return str(name) if name else None


def comment_from_jira(comment: Any) -> Comment:
    """The comment for a `jira.resources.Comment` (or anything shaped like one)."""
    return Comment(
        author=_display(getattr(comment, "author", None)) or "",
        body=str(getattr(comment, "body", "") or ""),
        created=str(getattr(comment, "created", "") or ""),
    )


def ticket_from_jira(issue: Any, *, base_url: str) -> Ticket:
    """The ticket for a `jira.resources.Issue` (or anything shaped like one); comments when the issue has them.

    Raises:
        BackendError: the issue lacks a field every Jira issue has.
    """
    try:
        fields = issue.fields
        comment_field = getattr(fields, "comment", None)
        comments = getattr(comment_field, "comments", None) or []
        priority = getattr(fields, "priority", None)
        return Ticket(
            key=str(issue.key),
            project=str(fields.project.key),
            summary=str(fields.summary or ""),
            description=str(getattr(fields, "description", None) or ""),
            status=str(fields.status.name),
            type=str(fields.issuetype.name),
            priority=str(priority.name) if priority is not None else "",
            assignee=_display(getattr(fields, "assignee", None)),
            reporter=_display(getattr(fields, "reporter", None)) or "",
            created=str(fields.created),
            updated=str(fields.updated),
            url=f"{base_url.rstrip('/')}/browse/{issue.key}",
            comments=tuple(comment_from_jira(comment) for comment in comments),
        )
    except AttributeError as exc:
        raise BackendError(f"Jira returned an issue this server cannot read ({exc})") from None


class JiraAdapter:
    """Tickets in Jira, through a `jira.JIRA` client (any object with its methods, for tests)."""

    name = "jira"

    def __init__(self, client: Any, url: str):
        self._client = client
        self.url = url.rstrip("/")

    @classmethod
    def connect(cls, url: str, user: str, token: str, *, timeout_seconds: float = 10.0) -> JiraAdapter:
        """An adapter over a real `jira.JIRA` client (basic auth: user + API token).

        Raises:
            BackendUnavailable: Jira cannot be reached.
            BackendError: Jira refused the credentials or answered with an error.
        """
        from jira import JIRA  # imported here: only the Jira backend pays for it

        def build() -> Any:
            return JIRA(server=url, basic_auth=(user, token), max_retries=0, timeout=timeout_seconds)

        return cls(_translate(build, url=url), url)

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if callable(close):
            close()

    def search(
        self, query: str = "", *, project: str | None = None, status: str = "any", limit: int = 20
    ) -> list[Ticket]:
        jql = jql_for(query, project=project, status=status)
        found = self._call(
            lambda: self._client.search_issues(jql, maxResults=check_limit(limit), fields=_SEARCH_FIELDS)
        )
        return [ticket_from_jira(issue, base_url=self.url) for issue in found]

    def get(self, key: str) -> Ticket:
        normalized = parse_key(key)
        return ticket_from_jira(self._call(lambda: self._client.issue(normalized), key=key), base_url=self.url)

    def create(self, project: str, summary: str, description: str = "", issue_type: str | None = None) -> Ticket:
        fields = {
            "project": {"key": _project_key(project)},
            "summary": check_text("summary", summary, max_length=MAX_SUMMARY),
            "description": description,
            "issuetype": {"name": (issue_type or DEFAULT_ISSUE_TYPE).strip()},
        }
        created = self._call(lambda: self._client.create_issue(fields=fields))
        return ticket_from_jira(created, base_url=self.url)

    def comment(self, key: str, body: str) -> Comment:
        normalized = parse_key(key)
        text = check_text("comment", body)
        return comment_from_jira(self._call(lambda: self._client.add_comment(normalized, text), key=key))

    def transition(self, key: str, to_status: str) -> Ticket:
        target = check_text("to_status", to_status)
        ticket = self.get(key)
        if ticket.status.lower() == target.lower():
            return ticket
        transitions: list[dict[str, Any]] = self._call(lambda: self._client.transitions(ticket.key), key=key)
        chosen = next((t for t in transitions if target.lower() in _names(t)), None)
        if chosen is None:
            allowed = list(dict.fromkeys(str(t.get("to", {}).get("name") or t.get("name")) for t in transitions))
            raise InvalidTransition(ticket.key, ticket.status, target, allowed)
        self._call(lambda: self._client.transition_issue(ticket.key, str(chosen["id"])), key=key)
        return self.get(ticket.key)

    def _call(self, action: Callable[[], _T], *, key: str | None = None) -> _T:
        return _translate(action, url=self.url, key=key)


def _names(transition: dict[str, Any]) -> set[str]:
    """The names a transition answers to: its own and its target status's, lower-cased."""
    names = {str(transition.get("name", "")).lower()}
    target = transition.get("to")
    if isinstance(target, dict) and target.get("name"):
        names.add(str(target["name"]).lower())
    return names


def _translate(action: Callable[[], _T], *, url: str, key: str | None = None) -> _T:
    """Run one client call, turning the client's failures into `TicketError`s.

    Raises:
        TicketNotFound: HTTP 404 on a call about `key`.
        InvalidTicketInput: HTTP 400 (Jira's reason in the message).
        BackendError: refused credentials or any other error answer.
        BackendUnavailable: Jira cannot be reached (requests' errors are `OSError`s).
    """
    from jira.exceptions import JIRAError

    try:
        return action()
    except JIRAError as exc:
        status = exc.status_code
        text = " ".join(str(exc.text or "").split())[:_MAX_ERROR_TEXT]
        if status == 404 and key is not None:
            raise TicketNotFound(key) from None
        if status == 400:
            raise InvalidTicketInput(f"Jira refused the request: {text or 'HTTP 400'}") from None
        if status in (401, 403):
            raise BackendError(
                f"Jira at {url} refused the credentials (HTTP {status}): check PORTCULLIS_TICKETS_JIRA_USER and "
                "PORTCULLIS_TICKETS_JIRA_TOKEN"
            ) from None
        raise BackendError(f"Jira at {url} answered HTTP {status}: {text}") from None
    except OSError as exc:
        raise BackendUnavailable(f"cannot reach Jira at {url}: {type(exc).__name__}") from None
