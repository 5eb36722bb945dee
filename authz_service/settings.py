"""Settings of the authorization service, read once from `AUTHZ_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from authz_service.credentials import OWNER_PATTERN
from authz_service.errors import ConfigurationError

__all__ = ["DEFAULT_GRPC_PORT", "DEFAULT_HTTP_PORT", "PLACEHOLDER_SECRETS", "Settings"]

DEFAULT_HTTP_PORT = 8181
DEFAULT_GRPC_PORT = 9191
DEFAULT_POLICY_DIR = Path("policies")
DEFAULT_CATALOG_FILE = Path("config/catalog.yaml")
DEFAULT_STATE_DIR = Path(".portcullis")
DEFAULT_POLICY_TIMEOUT_MS = 50
DEFAULT_CACHE_SIZE = 100_000
DEFAULT_MAX_BODY_BYTES = 64 * 1024
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "password"})


def _https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


class Settings(BaseSettings):
    """Configuration of one authz_service deployment (all its worker processes share it)."""

    model_config = SettingsConfigDict(env_prefix="AUTHZ_", extra="forbid")

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    workers: int = Field(default=2, ge=1, le=64, description="gRPC worker i listens on grpc_port + i")

    policy_dir: Path = DEFAULT_POLICY_DIR
    # The catalog: the registry's snapshot when registry_url is set (the platform), else a file (offline use).
    registry_url: str = ""
    registry_credential: SecretStr = SecretStr("")
    registry_poll_seconds: float = Field(default=1.0, gt=0)
    catalog_file: Path = DEFAULT_CATALOG_FILE
    watch: bool = True
    policy_timeout_ms: int = Field(default=DEFAULT_POLICY_TIMEOUT_MS, ge=1)
    cache_size: int = Field(default=DEFAULT_CACHE_SIZE, ge=0)

    decision_log: Path = DEFAULT_STATE_DIR / "decisions.jsonl"
    shadow_mode: bool = False
    shadow_servers: list[str] = Field(default_factory=list)

    # Service credentials of AuthZEN callers: owner -> secret (bearer token); the owner is a server's name, or
    # "registry". Each may ask only about what it owns (authzen.may_ask). Empty means no caller may ask.
    service_credentials: dict[str, SecretStr] = Field(default_factory=dict)
    # And a directory of one file per owner holding its secret (a mounted Secret; `portcullis up`'s state),
    # read again when it changes.
    service_credentials_dir: Path | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    # The OAuth 2.1 authorization server (authz_service/identity): its issuer URL, its signing keys (whose
    # JWKS Envoy trusts), and its state (clients, codes, refresh tokens) shared by every worker process.
    issuer: str = "http://127.0.0.1:8181"
    key_dir: Path = DEFAULT_STATE_DIR / "keys"
    identity: bool = True  # off: only the policy decision point (tokens come from another issuer)
    # Empty: SQLite next to the keys (the state directory). PostgreSQL works too (postgresql+psycopg://...); a secret,
    # since the URL may carry the database password.
    identity_database_url: SecretStr = SecretStr("")
    directory_file: Path = Path("config/directory.yaml")
    # The resources tokens may be issued for (RFC 8707): every server of the catalog under the gateway's
    # public URL, plus these (the registry's URL, for instance).
    gateway_url: str = "http://127.0.0.1:8080"
    extra_resources: list[str] = Field(default_factory=list)
    access_token_ttl_seconds: int = Field(default=600, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=60, le=365 * 86_400)
    authorization_code_ttl_seconds: int = Field(default=60, ge=5, le=600)
    # Key rotation: a new key is published this long before it signs (longer than any JWKS cache, Envoy's
    # is 300 s), and a retired key stays published until every token it signed has expired.
    key_activation_seconds: int = Field(default=330, ge=0)
    # Login federation to an upstream OIDC provider (production); empty means the embedded directory.
    upstream_issuer: str = ""
    upstream_client_id: str = ""
    upstream_client_secret: SecretStr = SecretStr("")
    upstream_groups_claim: str = "groups"
    upstream_business_groups_claim: str = "business_groups"
    # Client ID Metadata Documents over plain http on loopback: development only (refused in production).
    allow_insecure_metadata_documents: bool = False
    # The revocation feed the edge follows (portcullis_contracts.revocations). Empty: with the built-in identity,
    # this service's own feed on its HTTP port; without it, none (tokens are refused only when they expire).
    # Unreachable for longer than the bound: every check is refused with 503 (fail closed).
    revocation_url: str = ""
    revocation_poll_seconds: float = Field(default=0.5, gt=0, le=10)
    revocation_max_staleness_seconds: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        # A credential speaks for its owner only (authzen.may_ask); a secret shared by two owners would speak
        # for both.
        secrets = [secret.get_secret_value() for secret in self.service_credentials.values()]
        if len(set(secrets)) != len(secrets):
            raise ConfigurationError("two service credentials share a secret: give each AuthZEN caller its own")
        if any(not secret for secret in secrets):
            raise ConfigurationError("an empty service credential is refused")
        misnamed = sorted(name for name in self.service_credentials if not OWNER_PATTERN.match(name))
        if misnamed:
            raise ConfigurationError(f"service credential owners must be a server's name or 'registry': {misnamed}")
        if self.environment == "production":
            weak = [
                name
                for name, secret in self.service_credentials.items()
                if secret.get_secret_value().lower() in PLACEHOLDER_SECRETS
            ]
            if weak:
                raise ConfigurationError(f"placeholder service credential for {', '.join(sorted(weak))} in production")
            if self.registry_url and self.registry_credential.get_secret_value().lower() in PLACEHOLDER_SECRETS:
                raise ConfigurationError("placeholder registry credential in production")
            if self.shadow_mode:
                raise ConfigurationError("global shadow mode is refused in production; shadow single servers instead")
            if self.identity and not _https_or_loopback(self.issuer):
                raise ConfigurationError("the issuer must be an https URL in production (http only on loopback)")
            if self.allow_insecure_metadata_documents:
                raise ConfigurationError("client metadata documents over plain http are refused in production")
        if self.upstream_issuer and (
            not self.upstream_client_id or self.upstream_client_secret.get_secret_value().lower() in PLACEHOLDER_SECRETS
        ):
            raise ConfigurationError("login federation needs upstream_client_id and a real upstream_client_secret")
        if self.grpc_port <= self.http_port < self.grpc_port + self.workers:
            raise ConfigurationError("http_port collides with a gRPC worker port (grpc_port .. grpc_port+workers-1)")
        return self

    def identity_database(self) -> str:
        """The identity store's database URL."""
        return self.identity_database_url.get_secret_value() or f"sqlite:///{self.key_dir.parent / 'identity.db'}"

    def revocation_feed(self) -> str:
        """The revocation feed's URL ('' when there is none): `revocation_url`, else this service's own feed."""
        if self.revocation_url or not self.identity:
            return self.revocation_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # a listen-all address: reach it on loopback
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.http_port}/revocations"

    def grpc_ports(self) -> list[int]:
        """The gRPC port of every worker process."""
        return [self.grpc_port + i for i in range(self.workers)]
