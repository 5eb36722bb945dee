"""The Redmine adapter: the REST API (JSON, `X-Redmine-API-Key`) over httpx, mapped to the ticket model.

Redmine numbers issues globally (`/issues/42`). A ticket's key here is `<project-identifier>-<id>` (`ads-42`);
`#42`, `42` and `ADS-42` are accepted too. A key naming another project than the issue's is not found.

Redmine ignores a status it will not allow rather than refusing it, so a transition reads the issue's allowed
statuses first (`include=allowed_statuses`, Redmine 5) and checks the result after the update.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

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

__all__ = ["RedmineAdapter", "RedmineKey", "format_key", "parse_key", "ticket_from_redmine"]

API_KEY_HEADER = "X-Redmine-API-Key"
_KEY = re.compile(r"^(?:#|(?P<project>[a-z][a-z0-9_-]*)-)?(?P<id>[1-9][0-9]{0,9})$", re.IGNORECASE)
_PAGE = 100


@dataclass(frozen=True)
class RedmineKey:
    """A parsed ticket key: the issue id, and the project identifier when the key names one."""

    id: int
    project: str | None


def parse_key(key: str) -> RedmineKey:
    """`ads-42`, `ADS-42`, `#42` or `42` as an issue id (and project identifier, lower-cased).

    Raises:
        InvalidTicketInput: not a key of this form.
    """
    match = _KEY.match(key.strip())
    if match is None:
        raise InvalidTicketInput(f"{key!r} is not a ticket key: use <project>-<number> (ads-42) or #<number>")
    project = match.group("project")
    return RedmineKey(int(match.group("id")), project.lower() if project else None)


def format_key(identifier: str, issue_id: int) -> str:
    """The key a ticket is shown with: `<project-identifier>-<id>`."""
    return f"{identifier}-{issue_id}"


def ticket_from_redmine(issue: Mapping[str, Any], *, identifier: str, base_url: str) -> Ticket:
    """The ticket for one issue of the REST API (`include=journals` gives its comments; private notes are left out).

    Raises:
        BackendError: the issue lacks a field every Redmine issue has.
    """
    try:
        issue_id = int(issue["id"])
        comments = tuple(
            Comment(author=_name(journal.get("user")) or "", body=journal["notes"], created=journal["created_on"])
            for journal in issue.get("journals") or []
            if journal.get("notes") and not journal.get("private_notes")
        )
        return Ticket(
            key=format_key(identifier, issue_id),
            project=identifier,
            summary=issue.get("subject") or "",
            description=issue.get("description") or "",
            status=issue["status"]["name"],
            type=issue["tracker"]["name"],
            priority=issue["priority"]["name"],
            assignee=_name(issue.get("assigned_to")),
            reporter=_name(issue.get("author")) or "",
            created=issue["created_on"],
            updated=issue["updated_on"],
            url=f"{base_url.rstrip('/')}/issues/{issue_id}",
            comments=comments,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendError(f"Redmine returned an issue this server cannot read ({type(exc).__name__}: {exc})") from None


def _name(person: Any) -> str | None:
    return str(person["name"]) if isinstance(person, Mapping) and person.get("name") else None


class RedmineAdapter:
    """Tickets in Redmine, as the service account whose API key it holds sees them."""

    name = "redmine"

    def __init__(self, url: str, api_key: str, *, timeout_seconds: float = 10.0):
        self.url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._http = httpx.Client(
            base_url=self.url,
            headers={API_KEY_HEADER: api_key, "Accept": "application/json"},
            timeout=timeout_seconds,
        )
        self._identifiers: dict[int, str] | None = None

    def close(self) -> None:
        self._http.close()

    def search(
        self, query: str = "", *, project: str | None = None, status: str = "any", limit: int = 20
    ) -> list[Ticket]:
        params: dict[str, Any] = {
            "limit": check_limit(limit),
            "sort": "updated_on:desc",
            "status_id": self._status_param(status_filter(status)),
        }
        if project:
            params["project_id"] = self._project(project)["id"]
        if query.strip():
            found = self._request("GET", "/search.json", params={"q": query.strip(), "issues": 1, "limit": _PAGE})
            ids = [str(hit["id"]) for hit in found.get("results", []) if str(hit.get("type", "")).startswith("issue")]
            if not ids:
                return []
            params["issue_id"] = ",".join(ids)
        issues = self._request("GET", "/issues.json", params=params).get("issues", [])
        return [self._ticket(issue) for issue in issues]

    def get(self, key: str) -> Ticket:
        return self._ticket(self._issue(key, include="journals"))

    def create(self, project: str, summary: str, description: str = "", issue_type: str | None = None) -> Ticket:
        summary = check_text("summary", summary, max_length=MAX_SUMMARY)
        found = self._project(project)
        fields: dict[str, Any] = {"project_id": found["id"], "subject": summary, "description": description}
        if issue_type:
            fields["tracker_id"] = self._tracker_id(found, issue_type)
        created = self._request("POST", "/issues.json", payload={"issue": fields})
        return self._ticket(created["issue"])

    def comment(self, key: str, body: str) -> Comment:
        body = check_text("comment", body)
        issue = self._issue(key)
        self._request("PUT", f"/issues/{issue['id']}.json", payload={"issue": {"notes": body}})
        comments = self.get(self._ticket(issue).key).comments
        if not comments:
            raise BackendError(f"Redmine at {self.url} accepted the comment on {key} but does not show it")
        return comments[-1]

    def transition(self, key: str, to_status: str) -> Ticket:
        target = check_text("to_status", to_status)
        issue = self._issue(key, include="allowed_statuses")
        ticket = self._ticket(issue)
        current = issue["status"]
        if target.lower() == str(current["name"]).lower():
            return ticket
        allowed = [status for status in issue.get("allowed_statuses") or [] if status["id"] != current["id"]]
        chosen = next((status for status in allowed if str(status["name"]).lower() == target.lower()), None)
        if chosen is None:
            raise InvalidTransition(ticket.key, current["name"], target, [str(status["name"]) for status in allowed])
        self._request("PUT", f"/issues/{issue['id']}.json", payload={"issue": {"status_id": chosen["id"]}})
        moved = self.get(ticket.key)
        if moved.status != chosen["name"]:
            raise BackendError(f"Redmine at {self.url} did not apply the move of {ticket.key} to {chosen['name']!r}")
        return moved

    # The REST calls.

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> Any:
        """The JSON answer to one call (None for an empty one), every failure turned into a `TicketError`.

        Raises:
            TicketNotFound: `key` is given and Redmine does not know (or does not show) that issue.
            BackendUnavailable: Redmine cannot be reached or did not answer in time.
            InvalidTicketInput: Redmine refused the change as invalid (HTTP 422), with its reasons.
            BackendError: any other error answer, or an answer that is not JSON.
        """
        try:
            response = self._http.request(method, path, params=params, json=payload)
        except httpx.TimeoutException:
            raise BackendUnavailable(f"Redmine at {self.url} did not answer within {self._timeout:g}s") from None
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"cannot reach Redmine at {self.url}: {exc}") from None
        status = response.status_code
        if key is not None and status in (403, 404):
            raise TicketNotFound(key)
        if status == 401:
            raise BackendError(
                f"Redmine at {self.url} refused the API key (HTTP 401): check PORTCULLIS_TICKETS_REDMINE_API_KEY"
            )
        if status == 403:
            raise BackendError(f"Redmine at {self.url} does not let the service account {method} {path} (HTTP 403)")
        if status == 422:
            raise InvalidTicketInput(f"Redmine refused the change: {_reasons(response)}")
        if status >= 400:
            raise BackendError(f"Redmine at {self.url} answered HTTP {status} to {method} {path}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise BackendError(
                f"Redmine at {self.url} answered {method} {path} with something other than JSON"
            ) from None

    def _issue(self, key: str, *, include: str | None = None) -> dict[str, Any]:
        """The issue a key names (in the project it names, if any).

        Raises:
            TicketNotFound: no such issue, or it is in another project than the key says.
        """
        parsed = parse_key(key)
        params = {"include": include} if include else None
        issue: dict[str, Any] = self._request("GET", f"/issues/{parsed.id}.json", params=params, key=key)["issue"]
        if parsed.project is not None and self._identifier_of(issue) != parsed.project:
            raise TicketNotFound(key)
        return issue

    def _ticket(self, issue: Mapping[str, Any]) -> Ticket:
        return ticket_from_redmine(issue, identifier=self._identifier_of(issue), base_url=self.url)

    def _identifier_of(self, issue: Mapping[str, Any]) -> str:
        try:
            project_id = int(issue["project"]["id"])
        except (KeyError, TypeError, ValueError):
            raise BackendError("Redmine returned an issue without its project") from None
        identifiers = self._project_identifiers()
        if project_id not in identifiers:
            self._identifiers = None  # a project created since: read them again, once
            identifiers = self._project_identifiers()
        return identifiers.get(project_id, str(project_id))

    def _project_identifiers(self) -> dict[int, str]:
        if self._identifiers is None:
            self._identifiers = {int(project["id"]): str(project["identifier"]) for project in self._projects()}
        return self._identifiers

    def _projects(self) -> list[dict[str, Any]]:
        projects: list[dict[str, Any]] = []
        while True:
            page = self._request("GET", "/projects.json", params={"limit": _PAGE, "offset": len(projects)})
            batch = page.get("projects", [])
            projects.extend(batch)
            if not batch or len(projects) >= int(page.get("total_count", 0)):
                return projects

    def _project(self, identifier: str) -> dict[str, Any]:
        """The project with this identifier (any case).

        Raises:
            InvalidTicketInput: no such project visible to the service account (the message lists those that are).
        """
        wanted = identifier.strip().lower()
        projects = self._projects()
        for project in projects:
            if str(project["identifier"]).lower() == wanted:
                return project
        known = ", ".join(sorted(str(project["identifier"]) for project in projects)) or "none"
        raise InvalidTicketInput(f"no project {identifier!r}; known projects: {known}")

    def _tracker_id(self, project: Mapping[str, Any], issue_type: str) -> int:
        """The id of the project's tracker named `issue_type` (any case).

        Raises:
            InvalidTicketInput: the project has no such tracker (the message lists its trackers).
        """
        details = self._request("GET", f"/projects/{project['id']}.json", params={"include": "trackers"})
        trackers = details["project"].get("trackers", [])
        for tracker in trackers:
            if str(tracker["name"]).lower() == issue_type.strip().lower():
                return int(tracker["id"])
        known = ", ".join(str(tracker["name"]) for tracker in trackers) or "none"
        raise InvalidTicketInput(f"no ticket type {issue_type!r} in {project['identifier']}; known types: {known}")

    def _status_param(self, status: str) -> str:
        """The `status_id` filter for "open", "closed", "any" or a status name.

        Raises:
            InvalidTicketInput: an unknown status name (the message lists the known ones).
        """
        if status in ("open", "closed"):
            return status
        if status == "any":
            return "*"
        statuses = self._request("GET", "/issue_statuses.json").get("issue_statuses", [])
        for known in statuses:
            if str(known["name"]).lower() == status.lower():
                return str(known["id"])
        names = ", ".join(str(known["name"]) for known in statuses)
        raise InvalidTicketInput(f"no status {status!r}; use open, closed, any or one of: {names}")


def _reasons(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors", [])
    except (ValueError, AttributeError):
        errors = []
    return "; ".join(str(error) for error in errors) or f"HTTP {response.status_code}"
