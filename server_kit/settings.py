"""Settings of one kit server, read once from environment variables with a per-server prefix.

Each server reads `KIT_<NAME>_*`, where `<NAME>` is its name upper-cased with every character other than a
letter or digit turned into `_` (server `demo` reads `KIT_DEMO_ISSUER`, `finance-reports` reads
`KIT_FINANCE_REPORTS_AUTHZ_CREDENTIAL`). A prefix per server, not one shared `KIT_`, because one environment
(`portcullis up`, a compose file) starts several servers and each has its own audience and credential; the
`KIT_` head keeps the names clear of the platform's own services (`AUTHZ_`, `REGISTRY_`).
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from portcullis_contracts.problems import validation_problems
from portcullis_contracts.resource_metadata import SERVER_SCOPE, canonical_uri, resource_metadata_url
from server_kit.errors import ConfigurationError

__all__ = [
    "DEFAULT_ALLOWED_HOSTS",
    "DEFAULT_ALLOWED_ORIGINS",
    "DEFAULT_AUTHZ_TIMEOUT_SECONDS",
    "DEFAULT_DECISION_CACHE_TTL_SECONDS",
    "DEFAULT_GATEWAY_URL",
    "DEFAULT_ISSUER",
    "DEFAULT_PORT",
    "PLACEHOLDER_SECRETS",
    "KitSettings",
    "env_prefix",
]

DEFAULT_ISSUER = "http://127.0.0.1:8181"  # the embedded authorization server of `portcullis up`
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"
DEFAULT_PORT = 8300
DEFAULT_DECISION_CACHE_TTL_SECONDS = 5.0
DEFAULT_DECISION_CACHE_SIZE = 10_000
DEFAULT_AUTHZ_TIMEOUT_SECONDS = 2.0
DEFAULT_JWKS_CACHE_SECONDS = 300
DEFAULT_LEEWAY_SECONDS = 30
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
DEFAULT_ALLOWED_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "password"})
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def env_prefix(server: str) -> str:
    """The environment prefix of a server's settings: `KIT_<NAME>_`."""
    return f"KIT_{_NOT_ALNUM.sub('_', server).upper()}_"


def _https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def _absolute(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


class KitSettings(BaseSettings):
    """Configuration of one kit server. Build it with `KitSettings.from_env(name)` or with keyword arguments."""

    model_config = SettingsConfigDict(extra="forbid")

    server: str = Field(min_length=1, description="the server's name in the registry and the policies")
    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65_535)
    # Tokens: who issues them, where its keys are, and which audience is ours.
    issuer: str = DEFAULT_ISSUER
    jwks_url: str = ""  # empty: <issuer>/.well-known/jwks.json
    gateway_url: str = DEFAULT_GATEWAY_URL
    resource: str = ""  # empty: this server's canonical URI under gateway_url
    resource_metadata_url: str = ""  # empty: the RFC 9728 URL of `resource` (the gateway serves it)
    required_scope: str = SERVER_SCOPE  # empty: any scope
    jwks_cache_seconds: int = Field(default=DEFAULT_JWKS_CACHE_SECONDS, ge=0)
    leeway_seconds: int = Field(default=DEFAULT_LEEWAY_SECONDS, ge=0, le=300)
    # The issuer's revocation feed (portcullis_contracts.revocations); empty: the URL its metadata names
    # (<issuer>/.well-known/oauth-authorization-server). Not answered for longer than the bound: tokens get 503.
    revocation_url: str = ""
    revocation_poll_seconds: float = Field(default=0.5, gt=0, le=10)
    revocation_max_staleness_seconds: float = Field(default=10.0, gt=0, le=300)
    # Decisions: the AuthZEN API of authz_service and this server's service credential for it.
    authz_url: str = DEFAULT_ISSUER
    authz_credential: SecretStr = SecretStr("")
    authz_timeout_seconds: float = Field(default=DEFAULT_AUTHZ_TIMEOUT_SECONDS, gt=0, le=30)
    decision_cache_ttl_seconds: float = Field(default=DEFAULT_DECISION_CACHE_TTL_SECONDS, ge=0, le=60)
    decision_cache_size: int = Field(default=DEFAULT_DECISION_CACHE_SIZE, ge=0)
    # Host headers the MCP transport accepts (DNS-rebinding protection): add the gateway's host when it differs.
    allowed_hosts: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_HOSTS))
    allowed_origins: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_ORIGINS))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Downstream calls: this server's OAuth client at the issuer, for token exchange (RFC 8693). Empty secret:
    # token exchange is off and `Caller.exchange_token` says so.
    client_id: str = ""  # empty: server.<name>, the directory's convention
    client_secret: SecretStr = SecretStr("")
    token_url: str = ""  # empty: <issuer>/token
    # Seals the state a confirmation (MCP elicitation) carries between the rounds of one tool call. Every replica
    # must share them (first seals, all unseal); empty: a key per process, fine for one replica only.
    request_state_keys: list[SecretStr] = Field(default_factory=list)

    @classmethod
    def from_env(cls, server: str, **overrides: Any) -> KitSettings:
        """Read `KIT_<NAME>_*` (see the module docstring); keyword arguments win over the environment.

        Raises:
            ConfigurationError: a value is invalid or refused (placeholder credential, non-absolute URL, ...).
        """
        try:
            return cls(_env_prefix=env_prefix(server), server=server, **overrides)  # type: ignore[call-arg]
        except ValidationError as exc:
            problems = validation_problems(exc.errors(), env_prefix=env_prefix(server), root="SETTINGS")
            raise ConfigurationError(f"invalid settings for server {server!r}: {problems}") from None

    @classmethod
    def behind_gateway(cls, server: str, *, default_port: int | None = None, **overrides: Any) -> KitSettings:
        """`from_env`, with the gateway's host (from the resource URI) added to the allowed Host headers, on
        `default_port` unless the overrides or `KIT_<NAME>_PORT` say otherwise.

        Envoy forwards the Host the client used, so the MCP transport's DNS-rebinding protection must accept it.

        Raises:
            ConfigurationError: as `from_env`.
        """
        if default_port is not None and "port" not in overrides and f"{env_prefix(server)}PORT" not in os.environ:
            overrides["port"] = default_port
        settings = cls.from_env(server, **overrides)
        gateway_host = urlsplit(settings.resource).netloc
        if gateway_host and gateway_host not in settings.allowed_hosts:
            settings = cls.from_env(server, **{**overrides, "allowed_hosts": [*settings.allowed_hosts, gateway_host]})
        return settings

    @model_validator(mode="after")
    def _complete_and_refuse_unsafe(self) -> KitSettings:
        if not self.jwks_url:
            self.jwks_url = f"{self.issuer.rstrip('/')}/.well-known/jwks.json"
        if not self.resource:
            self.resource = canonical_uri(self.gateway_url, self.server)
        self.client_id = self.client_id or f"server.{self.server}"
        self.token_url = self.token_url or f"{self.issuer.rstrip('/')}/token"
        short = [i for i, key in enumerate(self.request_state_keys) if len(key.get_secret_value().encode()) < 32]
        if short:
            raise ConfigurationError(f"{self._env('request_state_keys')}: every key needs at least 32 bytes")
        self.resource = self.resource.rstrip("/")
        if not self.resource_metadata_url:
            self.resource_metadata_url = resource_metadata_url(self.resource)
        for name in ("issuer", "jwks_url", "resource", "authz_url", "resource_metadata_url", "token_url"):
            if not _absolute(getattr(self, name)):
                raise ConfigurationError(f"{self._env(name)} must be an absolute http(s) URL without a fragment")
        if self.revocation_url and not _absolute(self.revocation_url):
            raise ConfigurationError(
                f"{self._env('revocation_url')} must be an absolute http(s) URL without a fragment"
            )
        if not self.authz_credential.get_secret_value():
            raise ConfigurationError(
                f"{self._env('authz_credential')} is required: this server's service credential for the AuthZEN API"
            )
        if self.environment == "production":
            for name in ("authz_credential", "client_secret"):
                value = getattr(self, name).get_secret_value()
                if value.lower() in PLACEHOLDER_SECRETS - {""} or (name == "authz_credential" and not value):
                    raise ConfigurationError(f"placeholder {self._env(name)} in production")
            insecure = [
                self._env(n)
                for n in ("issuer", "jwks_url", "authz_url", "token_url", "revocation_url")
                if getattr(self, n) and not _https_or_loopback(getattr(self, n))
            ]
            if insecure:
                raise ConfigurationError(f"{', '.join(insecure)} must be https in production (http only on loopback)")
        return self

    def _env(self, field: str) -> str:
        return f"{env_prefix(self.server)}{field.upper()}"
