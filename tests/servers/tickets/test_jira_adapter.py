"""Unit tests of the Jira adapter against a fake of the `jira.JIRA` client object: the mapping of its resources,
the JQL it sends, transitions by status name, and how the client's failures become clear tool errors.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from jira.exceptions import JIRAError

from servers.tickets.errors import (
    BackendError,
    BackendUnavailable,
    InvalidTicketInput,
    InvalidTransition,
    TicketNotFound,
)
from servers.tickets.jira_adapter import JiraAdapter, jql_for, parse_key

URL = "https://acme.atlassian.net"
SECRET = "jira-api-token-never-shown"

# status -> [(transition id, transition name, target status)]
WORKFLOW = {
    "To Do": [("11", "Start progress", "In Progress")],
    "In Progress": [("21", "Resolve", "Done"), ("31", "Stop progress", "To Do")],
    "Done": [("41", "Reopen", "To Do")],
}


def person(name: str) -> SimpleNamespace:
    return SimpleNamespace(displayName=name, name=name.lower())


class FakeJira:
    """The part of `jira.JIRA` the adapter uses, over issues kept in memory (shaped like jira's resources)."""

    def __init__(self) -> None:
        self.issues: dict[str, SimpleNamespace] = {}
        self.searches: list[tuple[str, int, str]] = []
        self.failure: BaseException | None = None
        self.closed = False

    def add(self, key: str, summary: str, *, status: str = "To Do", assignee: str | None = None) -> SimpleNamespace:
        fields = SimpleNamespace(
            project=SimpleNamespace(key=key.split("-")[0]),
            summary=summary,
            description=None,
            status=SimpleNamespace(name=status),
            issuetype=SimpleNamespace(name="Task"),
            priority=SimpleNamespace(name="Medium"),
            assignee=person(assignee) if assignee else None,
            reporter=person("Service Account"),
            created="2026-11-20T10:00:00.000+0000",
            updated="2026-11-21T11:00:00.000+0000",
            comment=SimpleNamespace(comments=[]),
        )
        issue = SimpleNamespace(key=key, fields=fields)
        self.issues[key] = issue
        return issue

    def _issue(self, key: str) -> SimpleNamespace:
        if self.failure is not None:
            raise self.failure
        if key not in self.issues:
            raise JIRAError("Issue does not exist or you do not have permission to see it.", status_code=404)
        return self.issues[key]

    def issue(self, id: str) -> SimpleNamespace:
        return self._issue(id)

    def search_issues(self, jql_str: str, maxResults: int, fields: str) -> list[SimpleNamespace]:
        if self.failure is not None:
            raise self.failure
        self.searches.append((jql_str, maxResults, fields))
        return list(self.issues.values())[:maxResults]

    def create_issue(self, fields: dict[str, Any]) -> SimpleNamespace:
        if fields["issuetype"]["name"] not in ("Task", "Bug"):
            raise JIRAError("issuetype: Specify a valid issue type", status_code=400)
        project = fields["project"]["key"]
        issue = self.add(f"{project}-{len(self.issues) + 1}", fields["summary"])
        issue.fields.description = fields["description"]
        issue.fields.issuetype.name = fields["issuetype"]["name"]
        return issue

    def add_comment(self, issue: str, body: str) -> SimpleNamespace:
        comment = SimpleNamespace(author=person("Service Account"), body=body, created="2026-11-22T09:00:00.000+0000")
        self._issue(issue).fields.comment.comments.append(comment)
        return comment

    def transitions(self, issue: str) -> list[dict[str, Any]]:
        status = self._issue(issue).fields.status.name
        return [{"id": tid, "name": name, "to": {"name": target}} for tid, name, target in WORKFLOW[status]]

    def transition_issue(self, issue: str, transition: str) -> None:
        found = self._issue(issue)
        target = next(to for tid, _, to in WORKFLOW[found.fields.status.name] if tid == transition)
        found.fields.status.name = target

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake() -> FakeJira:
    client = FakeJira()
    client.add("ADS-1", "Pacing stalls", assignee="Alice Ads")
    return client


@pytest.fixture
def jira(fake: FakeJira) -> JiraAdapter:
    return JiraAdapter(fake, URL + "/")


def test_an_issue_maps_to_the_ticket_model(jira: JiraAdapter, fake: FakeJira) -> None:
    fake.add_comment("ADS-1", "Looking.")
    assert jira.get("ads-1").as_dict() == {
        "key": "ADS-1",
        "project": "ADS",
        "summary": "Pacing stalls",
        "description": "",
        "status": "To Do",
        "type": "Task",
        "priority": "Medium",
        "assignee": "Alice Ads",
        "reporter": "Service Account",
        "created": "2026-11-20T10:00:00.000+0000",
        "updated": "2026-11-21T11:00:00.000+0000",
        "url": f"{URL}/browse/ADS-1",
        "comments": [{"author": "Service Account", "body": "Looking.", "created": "2026-11-22T09:00:00.000+0000"}],
    }


def test_an_issue_without_priority_or_assignee_maps_to_empty_values(jira: JiraAdapter, fake: FakeJira) -> None:
    issue = fake.add("ADS-2", "Bare")
    del issue.fields.priority
    ticket = jira.get("ADS-2")
    assert ticket.priority == "" and ticket.assignee is None


def test_search_sends_jql_with_the_filters_and_the_limit(jira: JiraAdapter, fake: FakeJira) -> None:
    found = jira.search('pacing "zero"', project="ads", status="open", limit=5)
    assert [ticket.key for ticket in found] == ["ADS-1"]
    jql, limit, fields = fake.searches[0]
    assert jql == 'project = ADS AND text ~ "pacing \\"zero\\"" AND statusCategory != Done ORDER BY updated DESC'
    assert limit == 5 and "summary" in fields


@pytest.mark.parametrize(
    ("status", "clause"),
    [("closed", "statusCategory = Done"), ("In Review", 'status = "In Review"'), ("ANY", None)],
)
def test_the_status_filter_becomes_a_jql_clause(status: str, clause: str | None) -> None:
    assert jql_for(status=status) == (f"{clause} ORDER BY updated DESC" if clause else "ORDER BY updated DESC")


def test_create_files_the_issue_with_the_default_type_and_returns_it(jira: JiraAdapter) -> None:
    ticket = jira.create("ads", "New one", "Details.")
    assert (ticket.key, ticket.type, ticket.description, ticket.status) == ("ADS-2", "Task", "Details.", "To Do")


def test_create_with_a_type_jira_does_not_know_relays_jiras_reason(jira: JiraAdapter) -> None:
    with pytest.raises(InvalidTicketInput, match="Jira refused the request: issuetype: Specify a valid issue type"):
        jira.create("ADS", "New one", issue_type="Epic")


def test_comment_returns_the_comment_as_jira_stored_it(jira: JiraAdapter) -> None:
    said = jira.comment("ADS-1", "On it.")
    assert (said.author, said.body) == ("Service Account", "On it.")


def test_a_transition_is_found_by_its_target_status_in_any_case(jira: JiraAdapter) -> None:
    assert jira.transition("ADS-1", "in progress").status == "In Progress"
    assert jira.transition("ADS-1", "Resolve").status == "Done"


def test_an_unreachable_status_lists_the_statuses_the_ticket_can_move_to(jira: JiraAdapter) -> None:
    with pytest.raises(InvalidTransition) as caught:
        jira.transition("ADS-1", "Done")
    assert str(caught.value) == "ADS-1 cannot move from 'To Do' to 'Done'; allowed next statuses: In Progress"
    assert caught.value.allowed == ["In Progress"]


def test_an_unknown_issue_is_not_found(jira: JiraAdapter) -> None:
    with pytest.raises(TicketNotFound, match="^no ticket ADS-99$"):
        jira.get("ADS-99")
    with pytest.raises(TicketNotFound, match="^no ticket ads-99$"):
        jira.comment("ads-99", "hello")


@pytest.mark.parametrize("key", ["#4", "ADS", "ads-x", "1-ADS"])
def test_a_key_that_is_not_a_jira_key_is_refused(key: str) -> None:
    with pytest.raises(InvalidTicketInput, match="is not a ticket key"):
        parse_key(key)


def test_refused_credentials_are_a_backend_error_that_shows_no_secret(jira: JiraAdapter, fake: FakeJira) -> None:
    fake.failure = JIRAError(f"Unauthorized {SECRET}", status_code=401, url=URL, headers={"Authorization": SECRET})
    with pytest.raises(BackendError) as caught:
        jira.search()
    assert str(caught.value).startswith(f"Jira at {URL} refused the credentials (HTTP 401)")
    assert SECRET not in str(caught.value) and caught.value.__cause__ is None


def test_a_connection_failure_names_the_url(jira: JiraAdapter, fake: FakeJira) -> None:
    fake.failure = ConnectionError("Max retries exceeded")
    with pytest.raises(BackendUnavailable, match=f"^cannot reach Jira at {URL}: ConnectionError$"):
        jira.get("ADS-1")


def test_a_server_error_is_a_backend_error(jira: JiraAdapter, fake: FakeJira) -> None:
    fake.failure = JIRAError("Internal error", status_code=500)
    with pytest.raises(BackendError, match=r"answered HTTP 500: Internal error"):
        jira.get("ADS-1")


def test_closing_the_adapter_closes_the_client(jira: JiraAdapter, fake: FakeJira) -> None:
    jira.close()
    assert fake.closed
