"""Unit tests of the Redmine adapter's pure parts: ticket keys and the mapping of the REST API's issues."""

from __future__ import annotations

from typing import Any

import pytest

from servers.tickets.errors import BackendError, InvalidTicketInput
from servers.tickets.redmine import RedmineKey, format_key, parse_key, ticket_from_redmine

ISSUE: dict[str, Any] = {
    "id": 42,
    "project": {"id": 1, "name": "Ads"},
    "tracker": {"id": 1, "name": "Bug"},
    "status": {"id": 2, "name": "In Progress", "is_closed": False},
    "priority": {"id": 3, "name": "High"},
    "author": {"id": 5, "name": "Portcullis Bot"},
    "assigned_to": {"id": 6, "name": "Alice Ads"},
    "subject": "Pacing stalls",
    "description": None,
    "created_on": "2026-11-20T10:00:00Z",
    "updated_on": "2026-11-21T11:00:00Z",
    "journals": [
        {
            "id": 1,
            "user": {"id": 5, "name": "Portcullis Bot"},
            "notes": "Looking.",
            "created_on": "2026-11-20T10:05:00Z",
            "private_notes": False,
            "details": [],
        },
        {
            "id": 2,
            "user": {"id": 5, "name": "Portcullis Bot"},
            "notes": "",
            "created_on": "2026-11-20T10:06:00Z",
            "private_notes": False,
            "details": [{"property": "attr", "name": "status_id"}],
        },
        {
            "id": 3,
            "user": {"id": 7, "name": "Bob"},
            "notes": "internal only",
            "created_on": "2026-11-20T10:07:00Z",
            "private_notes": True,
            "details": [],
        },
    ],
}


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("ads-42", RedmineKey(42, "ads")),
        ("ADS-42", RedmineKey(42, "ads")),
        ("#42", RedmineKey(42, None)),
        ("42", RedmineKey(42, None)),
        (" my-team_2-7 ", RedmineKey(7, "my-team_2")),
    ],
)
def test_a_key_names_an_issue_and_maybe_its_project(key: str, parsed: RedmineKey) -> None:
    assert parse_key(key) == parsed


@pytest.mark.parametrize(
    "key", ["", "ads", "ads-", "ads-0", "#", "#-1", "2ads-4", "ads 4", "ads-4x", "ads-12345678901"]
)
def test_a_malformed_key_is_refused_with_the_expected_form(key: str) -> None:
    with pytest.raises(InvalidTicketInput, match="is not a ticket key: use <project>-<number>"):
        parse_key(key)


def test_a_ticket_is_shown_with_its_project_identifier_and_number() -> None:
    assert format_key("ads", 42) == "ads-42"
    assert parse_key(format_key("my-team", 9)) == RedmineKey(9, "my-team")


def test_an_issue_maps_to_the_ticket_model_without_status_changes_or_private_notes() -> None:
    ticket = ticket_from_redmine(ISSUE, identifier="ads", base_url="http://127.0.0.1:8390/")
    assert ticket.as_dict() == {
        "key": "ads-42",
        "project": "ads",
        "summary": "Pacing stalls",
        "description": "",
        "status": "In Progress",
        "type": "Bug",
        "priority": "High",
        "assignee": "Alice Ads",
        "reporter": "Portcullis Bot",
        "created": "2026-11-20T10:00:00Z",
        "updated": "2026-11-21T11:00:00Z",
        "url": "http://127.0.0.1:8390/issues/42",
        "comments": [{"author": "Portcullis Bot", "body": "Looking.", "created": "2026-11-20T10:05:00Z"}],
    }


def test_an_unassigned_issue_from_a_list_has_no_assignee_and_no_comments() -> None:
    listed = {key: value for key, value in ISSUE.items() if key not in ("assigned_to", "journals")}
    ticket = ticket_from_redmine(listed, identifier="ads", base_url="http://redmine")
    assert ticket.assignee is None and ticket.comments == ()
    assert ticket.summary_dict() == {
        "key": "ads-42",
        "project": "ads",
        "summary": "Pacing stalls",
        "status": "In Progress",
        "type": "Bug",
        "priority": "High",
        "assignee": None,
        "updated": "2026-11-21T11:00:00Z",
        "url": "http://redmine/issues/42",
    }


def test_an_issue_without_a_status_is_a_backend_error() -> None:
    broken = {key: value for key, value in ISSUE.items() if key != "status"}
    with pytest.raises(BackendError, match="Redmine returned an issue this server cannot read"):
        ticket_from_redmine(broken, identifier="ads", base_url="http://redmine")
