"""Unit tests of the backend settings: the backend is chosen by name, and what is missing is named, never a value."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from portcullis.testing import free_port
from servers.tickets.errors import BackendError, BackendUnavailable
from servers.tickets.redmine import RedmineAdapter
from servers.tickets.settings import DEFAULT_REDMINE_URL, TicketsSettings, load_settings, opened


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("PORTCULLIS_TICKETS_")]:
        monkeypatch.delenv(name)


def test_redmine_is_the_default_backend_at_the_local_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_TICKETS_REDMINE_API_KEY", "k" * 40)
    settings = load_settings()
    assert settings.backend == "redmine" and settings.redmine_url == DEFAULT_REDMINE_URL == "http://127.0.0.1:8390"
    with opened(settings) as backend:
        assert isinstance(backend, RedmineAdapter) and backend.url == DEFAULT_REDMINE_URL
    assert "k" * 40 not in repr(settings)


def test_jira_needs_its_url_user_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_TICKETS_BACKEND", "jira")
    monkeypatch.setenv("PORTCULLIS_TICKETS_JIRA_URL", "https://acme.atlassian.net")
    with pytest.raises(BackendError) as caught:
        load_settings()
    assert str(caught.value) == (
        "the jira backend is not configured: set PORTCULLIS_TICKETS_JIRA_USER, PORTCULLIS_TICKETS_JIRA_TOKEN"
    )


def test_an_unknown_backend_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_TICKETS_BACKEND", "trello")
    with pytest.raises(BackendError, match="^invalid tickets settings: PORTCULLIS_TICKETS_BACKEND: "):
        load_settings()


def test_an_unreachable_jira_is_a_clear_error_at_connection() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = TicketsSettings(
        backend="jira", jira_url=url, jira_user="svc", jira_token=SecretStr("t0ken"), timeout_seconds=2
    )
    with pytest.raises(BackendUnavailable) as caught, opened(settings.check()):
        pass
    assert str(caught.value) == f"cannot reach Jira at {url}: ConnectionError"
    assert "t0ken" not in str(caught.value)
