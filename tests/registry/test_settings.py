"""The registry's settings: secrets stay out of every repr, placeholders are refused in production."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from registry.errors import ConfigurationError
from registry.settings import RegistrySettings

SECRETS = {
    "authz_credential": "authz-credential-0123456789",
    "session_secret": "session-secret-0123456789",
    "oauth_client_secret": "oauth-client-secret-0123456789",
    "database_url": "postgresql+psycopg://registry:database-password-0123456789@db/registry",
}


def test_no_secret_appears_in_the_settings_repr() -> None:
    settings = RegistrySettings(
        authz_credential=SecretStr(SECRETS["authz_credential"]),
        session_secret=SecretStr(SECRETS["session_secret"]),
        oauth_client_secret=SecretStr(SECRETS["oauth_client_secret"]),
        database_url=SecretStr(SECRETS["database_url"]),
        service_credentials={"gateway": SecretStr("snapshot-credential-0123456789")},
    )
    shown = f"{settings!r} {settings}"
    for secret in [*SECRETS.values(), "database-password-0123456789", "snapshot-credential-0123456789"]:
        assert secret not in shown


def test_secrets_read_from_the_environment_are_secret_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_SESSION_SECRET", SECRETS["session_secret"])
    monkeypatch.setenv("REGISTRY_SERVICE_CREDENTIALS", '{"gateway": "snapshot-credential-0123456789"}')
    settings = RegistrySettings()
    assert settings.session_secret.get_secret_value() == SECRETS["session_secret"]
    assert settings.service_credentials["gateway"].get_secret_value() == "snapshot-credential-0123456789"


def test_production_refuses_a_placeholder_session_secret() -> None:
    # A ValueError, so pydantic reports it among the settings' validation errors.
    assert issubclass(ConfigurationError, ValueError)
    with pytest.raises(ValueError, match="SESSION_SECRET"):
        RegistrySettings(environment="production", session_secret=SecretStr("changeme"))
