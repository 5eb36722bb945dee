"""Settings of the registry, read once from `REGISTRY_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.errors import ConfigurationError

__all__ = ["DEFAULT_PORT", "DEFAULT_REVIEWS", "RegistrySettings"]

DEFAULT_PORT = 8282
DEFAULT_DATABASE_URL = "sqlite:///.portcullis/registry.db"
DEFAULT_MAX_BODY_BYTES = 256 * 1024
# Review name -> the group whose members may sign it off. Every one must pass before approval.
DEFAULT_REVIEWS = {"security": "security-reviewers", "legal": "legal-privacy", "genai": "genai-council"}
_PLACEHOLDERS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "password"})


class RegistrySettings(BaseSettings):
    """Configuration of one registry deployment (replicas share the database)."""

    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="forbid")

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)  # a secret: it may carry the database password
    public_url: str = f"http://127.0.0.1:{DEFAULT_PORT}"
    gateway_url: str = "http://127.0.0.1:8080"

    # Tokens the registry accepts from people and CLIs: issued by the platform's identity.
    issuer: str = "http://127.0.0.1:8181"
    jwks_url: str = "http://127.0.0.1:8181/.well-known/jwks.json"
    # The audience registry tokens carry (defaults to public_url).
    audience: str = ""
    # The issuer's revocation feed (portcullis_contracts.revocations): a revoked token is refused within a
    # second. Empty: the feed the issuer's metadata names.
    revocation_url: str = ""

    # The registry is an AuthZEN client of authz_service, like every server.
    authz_url: str = "http://127.0.0.1:8181"
    authz_credential: SecretStr = SecretStr("")
    authz_timeout_seconds: float = 2.0

    # Service credentials that may read the catalog snapshot: name -> bearer secret.
    service_credentials: dict[str, SecretStr] = Field(default_factory=dict)

    reviews: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_REVIEWS))
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    page_limit_default: int = 30
    page_limit_max: int = 100
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])

    # Web UI: the signed session cookie, and a development login (pick a directory user) that is off by default.
    session_secret: SecretStr = SecretStr("")
    # Sign-in through the platform's authorization server (the registry is its confidential client).
    oauth_client_id: str = ""
    oauth_client_secret: SecretStr = SecretStr("")
    dev_login: bool = False
    directory_file: Path = Path("config/directory.yaml")
    decision_log: Path = Path(".portcullis/decisions.jsonl")
    # Server.json files published and approved on first start of an empty database (local platform only).
    seed_dir: Path | None = None

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> RegistrySettings:
        if self.environment == "production":
            if self.dev_login:
                raise ConfigurationError("the development login is refused in production")
            if self.session_secret.get_secret_value().lower() in _PLACEHOLDERS:
                raise ConfigurationError("a real REGISTRY_SESSION_SECRET is required in production")
            weak = [n for n, s in self.service_credentials.items() if s.get_secret_value().lower() in _PLACEHOLDERS]
            if weak or self.authz_credential.get_secret_value().lower() in _PLACEHOLDERS:
                raise ConfigurationError("placeholder service credential in production")
            if self.oauth_client_id and self.oauth_client_secret.get_secret_value().lower() in _PLACEHOLDERS:
                raise ConfigurationError("a real REGISTRY_OAUTH_CLIENT_SECRET is required in production")
            if self.seed_dir is not None:
                raise ConfigurationError("seeding approved servers is for the local platform only")
        for review, group in self.reviews.items():
            if not review or not group:
                raise ConfigurationError("every required review needs a name and a group")
        return self

    @property
    def token_audience(self) -> str:
        return self.audience or self.public_url.rstrip("/")
