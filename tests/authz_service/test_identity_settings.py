"""Identity settings that are unsafe outside development are refused at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from authz_service.errors import ConfigurationError
from authz_service.identity.store import IdentityStore
from authz_service.settings import Settings


def _production(**overrides: Any) -> Settings:
    return Settings(
        environment="production",
        service_credentials={"registry": SecretStr("a-long-real-secret-0123456789")},
        **overrides,
    )


def test_production_refuses_a_plain_http_issuer_off_loopback() -> None:
    with pytest.raises(ConfigurationError, match="https"):
        _production(issuer="http://auth.corp.example")
    assert _production(issuer="https://auth.corp.example").issuer == "https://auth.corp.example"
    assert _production(issuer="http://127.0.0.1:8181").issuer  # a single machine (compose on a laptop)


def test_production_refuses_metadata_documents_over_http() -> None:
    with pytest.raises(ConfigurationError, match="metadata documents"):
        _production(issuer="https://auth.corp.example", allow_insecure_metadata_documents=True)


def test_federation_needs_a_client_id_and_a_real_secret() -> None:
    with pytest.raises(ConfigurationError, match="federation"):
        Settings(
            upstream_issuer="https://idp.corp.example",
            upstream_client_id="portcullis",
            upstream_client_secret=SecretStr(""),
        )
    with pytest.raises(ConfigurationError, match="federation"):
        Settings(upstream_issuer="https://idp.corp.example", upstream_client_secret=SecretStr("a-long-real-secret"))


def test_the_identity_store_defaults_to_sqlite_next_to_the_keys() -> None:
    settings = Settings(key_dir=Path("/var/lib/portcullis/keys"))
    assert settings.identity_database() == "sqlite:////var/lib/portcullis/identity.db"


def test_the_identity_database_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = IdentityStore(f"sqlite:///{tmp_path / 'state' / 'identity.db'}")
    store.revoke_access_token("a-jti", 2e9)
    store.close()
    for name in ("identity.db", "identity.db-wal", "identity.db-shm"):
        path = tmp_path / "state" / name
        if path.exists():
            assert path.stat().st_mode & 0o077 == 0, name
