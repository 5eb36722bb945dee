"""The decision point's settings: secrets stay out of every repr and are read as secret strings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from authz_service.errors import ConfigurationError
from authz_service.settings import Settings

SERVICE_SECRET = "service-credential-0123456789"
REGISTRY_SECRET = "registry-credential-0123456789"
UPSTREAM_SECRET = "upstream-client-secret-0123456789"
DATABASE_PASSWORD = "database-password-0123456789"


def test_no_secret_appears_in_the_settings_repr() -> None:
    settings = Settings(
        service_credentials={"demo": SecretStr(SERVICE_SECRET)},
        registry_url="http://127.0.0.1:8282",
        registry_credential=SecretStr(REGISTRY_SECRET),
        upstream_issuer="https://idp.corp.example",
        upstream_client_id="portcullis",
        upstream_client_secret=SecretStr(UPSTREAM_SECRET),
        identity_database_url=SecretStr(f"postgresql+psycopg://identity:{DATABASE_PASSWORD}@db/identity"),
    )
    shown = f"{settings!r} {settings}"
    for secret in (SERVICE_SECRET, REGISTRY_SECRET, UPSTREAM_SECRET, DATABASE_PASSWORD):
        assert secret not in shown


def test_service_credentials_read_from_the_environment_are_secret_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHZ_SERVICE_CREDENTIALS", f'{{"demo": "{SERVICE_SECRET}"}}')
    settings = Settings()
    assert settings.service_credentials["demo"].get_secret_value() == SERVICE_SECRET


def test_two_owners_sharing_a_secret_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="share a secret"):
        Settings(service_credentials={"demo": SecretStr(SERVICE_SECRET), "sql": SecretStr(SERVICE_SECRET)})
