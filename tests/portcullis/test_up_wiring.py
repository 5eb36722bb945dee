"""What `portcullis up` (and the test harness) tell a kit server is what the server reads back."""

from __future__ import annotations

import pytest

from portcullis.up import kit_server_environment
from servers.demo import load_settings

SECRET = "demo-authzen-credential-0123456789"


def test_the_demo_server_reads_back_the_kit_settings_portcullis_up_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = kit_server_environment(
        "demo",
        issuer="http://issuer.test:8181",
        jwks_url="http://issuer.test:8181/.well-known/jwks.json",
        resource="http://gateway.test:8080/servers/demo/mcp",
        authz_url="http://authz.test:8181",
        authz_credential=SECRET,
        revocation_url="http://issuer.test:8181/revocations",
    )
    assert all(name.startswith("KIT_DEMO_") for name in environment)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(port=8399)
    assert settings.issuer == "http://issuer.test:8181"
    assert settings.jwks_url == "http://issuer.test:8181/.well-known/jwks.json"
    assert settings.revocation_url == "http://issuer.test:8181/revocations"
    assert settings.resource == "http://gateway.test:8080/servers/demo/mcp"
    assert settings.resource_metadata_url == (
        "http://gateway.test:8080/.well-known/oauth-protected-resource/servers/demo/mcp"
    )
    assert settings.authz_url == "http://authz.test:8181"
    assert settings.authz_credential.get_secret_value() == SECRET
    assert settings.port == 8399 and settings.host == "127.0.0.1"


def test_the_demo_server_accepts_the_gateway_host_envoy_forwards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_DEMO_AUTHZ_CREDENTIAL", SECRET)
    monkeypatch.setenv("KIT_DEMO_RESOURCE", "https://mcp.example.com/servers/demo/mcp")
    assert "mcp.example.com" in load_settings().allowed_hosts
    monkeypatch.setenv("KIT_DEMO_RESOURCE", "http://127.0.0.1:8080/servers/demo/mcp")
    assert load_settings().allowed_hosts.count("127.0.0.1:8080") == 1
