"""Which tracker the tickets server talks to: `PORTCULLIS_TICKETS_*`, read once when the server starts.

| variable | default | meaning |
|---|---|---|
| `PORTCULLIS_TICKETS_BACKEND` | `redmine` | `redmine` or `jira` |
| `PORTCULLIS_TICKETS_REDMINE_URL` | `http://127.0.0.1:8390` | Redmine's base URL (the local backend's) |
| `PORTCULLIS_TICKETS_REDMINE_API_KEY` | (required for redmine) | the service account's API key |
| `PORTCULLIS_TICKETS_JIRA_URL` | (required for jira) | e.g. https://acme.atlassian.net |
| `PORTCULLIS_TICKETS_JIRA_USER` / `_JIRA_TOKEN` | (required for jira) | basic auth: account + API token |
| `PORTCULLIS_TICKETS_TIMEOUT_SECONDS` | `10` | per request to the tracker |

Secrets are `SecretStr`: they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from servers.tickets.errors import BackendError
from servers.tickets.jira_adapter import JiraAdapter
from servers.tickets.model import TicketBackend
from servers.tickets.redmine import RedmineAdapter

__all__ = ["DEFAULT_REDMINE_PORT", "DEFAULT_REDMINE_URL", "ENV_PREFIX", "TicketsSettings", "load_settings", "opened"]

ENV_PREFIX = "PORTCULLIS_TICKETS_"
DEFAULT_REDMINE_PORT = 8390
DEFAULT_REDMINE_URL = f"http://127.0.0.1:{DEFAULT_REDMINE_PORT}"


class TicketsSettings(BaseSettings):
    """The tracker's location and credentials."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    backend: Literal["redmine", "jira"] = "redmine"
    redmine_url: str = DEFAULT_REDMINE_URL
    redmine_api_key: SecretStr = SecretStr("")
    jira_url: str = ""
    jira_user: str = ""
    jira_token: SecretStr = SecretStr("")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    def check(self) -> TicketsSettings:
        """These settings, when the chosen backend has everything it needs.

        Raises:
            BackendError: a required variable is missing (the message names it).
        """
        if self.backend == "redmine":
            missing = [] if self.redmine_api_key.get_secret_value() else ["REDMINE_API_KEY"]
        else:
            required = {"JIRA_URL": self.jira_url, "JIRA_USER": self.jira_user}
            required["JIRA_TOKEN"] = self.jira_token.get_secret_value()
            missing = [name for name, value in required.items() if not value]
        if missing:
            names = ", ".join(f"{ENV_PREFIX}{name}" for name in missing)
            raise BackendError(f"the {self.backend} backend is not configured: set {names}")
        return self


def load_settings() -> TicketsSettings:
    """The settings from the environment, checked.

    Raises:
        BackendError: invalid or incomplete settings (no value is echoed: some are secrets).
    """
    try:
        settings = TicketsSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise BackendError(f"invalid tickets settings: {problems}") from None
    return settings.check()


@contextmanager
def opened(settings: TicketsSettings) -> Iterator[TicketBackend]:
    """The adapter of the configured tracker, closed when the block ends.

    Raises:
        BackendUnavailable: Jira cannot be reached (Redmine is reached on the first call).
        BackendError: Jira refused the credentials.
    """
    backend: TicketBackend
    if settings.backend == "jira":
        backend = JiraAdapter.connect(
            settings.jira_url,
            settings.jira_user,
            settings.jira_token.get_secret_value(),
            timeout_seconds=settings.timeout_seconds,
        )
    else:
        backend = RedmineAdapter(
            settings.redmine_url,
            settings.redmine_api_key.get_secret_value(),
            timeout_seconds=settings.timeout_seconds,
        )
    try:
        yield backend
    finally:
        backend.close()
