"""Fixtures for registry tests: a registry on SQLite and on PostgreSQL, deciding through the real policies.

The authorization service is the real one (real Polar policies, real AuthZEN adapter), served in-process.
PostgreSQL is the machine's (127.0.0.1:5432, trust auth); each test gets a fresh database. Without it the
PostgreSQL variants skip with a message, unless PORTCULLIS_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from authz_service.http_app import create_app as create_authz_app
from authz_service.keys import SigningKey
from authz_service.runtime import Runtime
from authz_service.settings import Settings as AuthzSettings
from portcullis_contracts.directory import load_directory
from registry.app import create_app
from registry.authz import AuthzClient
from registry.identity import RegistryTokenVerifier
from registry.settings import RegistrySettings

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "config" / "servers"
ISSUER = "http://issuer.test"
AUDIENCE = "http://registry.test"
SERVICE_SECRET = "registry-test-credential"
SNAPSHOT_SECRET = "snapshot-test-credential"
POSTGRES_URL = os.environ.get("REGISTRY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class StaticJwks:
    """The issuer's JWKS without the network fetch (the fetch itself is exercised end to end)."""

    def __init__(self, key: SigningKey):
        self._keys = {k["kid"]: jwt.PyJWK(k) for k in key.jwks()["keys"]}

    def get_signing_key(self, kid: str) -> jwt.PyJWK:
        try:
            return self._keys[kid]
        except KeyError:
            raise jwt.PyJWKClientError(f"no key {kid}") from None


@dataclass
class RegistryHarness:
    client: TestClient
    key: SigningKey
    settings: RegistrySettings

    def token(self, user: str, *, client: str = "registry-cli", audience: str = AUDIENCE, **claims: Any) -> str:
        person = load_directory(ROOT / "config" / "directory.yaml").user(user)
        base = {"email": person.email, "groups": person.groups, "business_groups": person.business_groups}
        return self.key.mint(
            issuer=ISSUER, subject=user, audience=audience, client_id=client, claims={**base, **claims}
        )

    def auth(self, user: str, **options: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, **options)}"}


def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    admin = create_engine(make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    name = f"portcullis_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if os.environ.get("PORTCULLIS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required here but unavailable: {exc}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} unavailable ({type(exc).__name__}); set it up to run these")
    try:
        yield str(make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        yield from postgres_database()


@pytest.fixture
def authz_client(tmp_path: Path) -> Iterator[AuthzClient]:
    settings = AuthzSettings(
        policy_dir=ROOT / "policies",
        catalog_file=ROOT / "config" / "catalog.yaml",
        decision_log=tmp_path / "decisions.jsonl",
        key_dir=tmp_path / "authz-keys",
        service_credentials={"registry": SecretStr(SERVICE_SECRET)},
        watch=False,
    )
    runtime = Runtime(settings)
    try:
        with TestClient(create_authz_app(runtime), base_url="http://authz.test") as http:
            yield AuthzClient(http, credential=SERVICE_SECRET)
    finally:
        runtime.close()


def build_registry(
    database_url: str,
    authz: AuthzClient,
    *,
    seed: bool = True,
    revoked: Callable[[], frozenset[str]] | None = None,
    **overrides: Any,
) -> RegistryHarness:
    key = SigningKey.generate()
    options: dict[str, Any] = {
        "database_url": database_url,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "service_credentials": {"authz": SNAPSHOT_SECRET},
        "seed_dir": SEED if seed else None,
        "gateway_url": "http://gateway.test",
        **overrides,
    }
    settings = RegistrySettings(**options)
    verifier = RegistryTokenVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url="unused",
        jwks_client=StaticJwks(key),
        revoked=revoked,
    )
    app = create_app(settings, authz=authz, verifier=verifier)
    return RegistryHarness(TestClient(app), key, settings)


@pytest.fixture
def registry(database_url: str, authz_client: AuthzClient) -> Iterator[RegistryHarness]:
    harness = build_registry(database_url, authz_client)
    yield harness
    harness.client.app.state.registry.engine.dispose()  # type: ignore[attr-defined]


def server_json(
    name: str = "com.portcullis.ads/ad-insights", version: str = "1.0.0", **governance: Any
) -> dict[str, Any]:
    """A valid server.json with the governance extension (overridable field by field)."""
    route = name.rpartition("/")[2]
    document: dict[str, Any] = {
        "name": name,
        "title": "Ad insights",
        "description": "Campaign performance for the ads organisation.",
        "version": version,
        "remotes": [{"type": "streamable-http", "url": f"http://gateway.test/servers/{route}/mcp"}],
        "_meta": {
            "dev.portcullis/governance": {
                "owner_team": "ads-eng",
                "support_channel": "#ads-data",
                "sensitivity": "confidential",
                "business_group": "ads",
                "allowed_clients": ["claude-desktop", "vscode"],
                "upstream": "127.0.0.1:8399",
                "tools": [
                    {"name": "campaign_report", "description": "Campaign KPIs.", "business_groups": ["ads"]},
                    {"name": "pause_campaign", "description": "Pause one campaign.", "read_only": False},
                ],
                **governance,
            }
        },
    }
    return copy.deepcopy(document)


def dumps(document: Any) -> str:
    return json.dumps(document)
