"""Settings: one `KIT_<NAME>_` prefix per server, derived defaults that match the gateway, unsafe values refused."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from gateway.config import canonical_uri, resource_metadata_url
from server_kit import ConfigurationError, Kit, KitSettings, env_prefix

CREDENTIAL = "a-real-looking-service-credential"
SECRET = SecretStr(CREDENTIAL)


@pytest.mark.parametrize(
    ("server", "prefix"), [("demo", "KIT_DEMO_"), ("finance-reports", "KIT_FINANCE_REPORTS_"), ("sql", "KIT_SQL_")]
)
def test_each_server_reads_its_own_environment_prefix(server: str, prefix: str) -> None:
    assert env_prefix(server) == prefix


def test_settings_are_read_from_the_servers_prefix_and_keywords_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_DEMO_AUTHZ_CREDENTIAL", CREDENTIAL)
    monkeypatch.setenv("KIT_DEMO_ISSUER", "http://127.0.0.1:9999")
    monkeypatch.setenv("KIT_DEMO_DECISION_CACHE_TTL_SECONDS", "2.5")
    monkeypatch.setenv("KIT_DEMO_ALLOWED_HOSTS", '["gateway.internal:8080"]')
    monkeypatch.setenv("KIT_OTHER_PORT", "9000")  # another server's: ignored
    settings = KitSettings.from_env("demo", port=8311)
    assert settings.authz_credential.get_secret_value() == CREDENTIAL
    assert settings.issuer == "http://127.0.0.1:9999" and settings.decision_cache_ttl_seconds == 2.5
    assert settings.allowed_hosts == ["gateway.internal:8080"] and settings.port == 8311
    assert CREDENTIAL not in repr(settings)


def test_defaults_derive_the_audience_jwks_and_metadata_url_as_the_gateway_does() -> None:
    settings = KitSettings(server="demo", gateway_url="https://gw.example.com", authz_credential=SECRET)
    assert settings.resource == canonical_uri("https://gw.example.com", "demo")
    assert settings.resource_metadata_url == resource_metadata_url(settings.resource)
    assert settings.jwks_url == "http://127.0.0.1:8181/.well-known/jwks.json"
    assert settings.decision_cache_ttl_seconds == 5.0 and settings.required_scope == "mcp"


def test_a_missing_service_credential_is_a_clear_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIT_DEMO_AUTHZ_CREDENTIAL", raising=False)
    with pytest.raises(ConfigurationError, match="KIT_DEMO_AUTHZ_CREDENTIAL is required"):
        KitSettings.from_env("demo")


def test_an_invalid_value_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_DEMO_DECISION_CACHE_TTL_SECONDS", "3600")
    with pytest.raises(ConfigurationError, match="KIT_DEMO_DECISION_CACHE_TTL_SECONDS: .*less than or equal to 60"):
        KitSettings.from_env("demo", authz_credential=SECRET)


def test_a_relative_resource_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="KIT_DEMO_RESOURCE must be an absolute"):
        KitSettings(server="demo", resource="/servers/demo/mcp", authz_credential=SECRET)


def test_production_refuses_a_placeholder_credential_and_plain_http_off_loopback() -> None:
    with pytest.raises(ConfigurationError, match="placeholder KIT_DEMO_AUTHZ_CREDENTIAL in production"):
        KitSettings(server="demo", environment="production", authz_credential=SecretStr("changeme"))
    with pytest.raises(ConfigurationError, match="KIT_DEMO_ISSUER, KIT_DEMO_JWKS_URL, KIT_DEMO_TOKEN_URL must be"):
        KitSettings(server="demo", environment="production", authz_credential=SECRET, issuer="http://issuer.corp")
    loopback = KitSettings(server="demo", environment="production", authz_credential=SECRET)
    assert loopback.issuer.startswith("http://127.0.0.1")


def test_settings_of_another_server_are_refused_when_building_the_app() -> None:
    kit = Kit("demo")
    with pytest.raises(ConfigurationError, match="settings are for server 'sql', not 'demo'"):
        kit.create_app(KitSettings(server="sql", authz_credential=SECRET))
