"""Wiring of the identity side of authz_service: the identity source (directory or upstream provider), the
shared store, the client registry, the token issuer and the Authlib server, built once per process.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from authz_service.identity.clients import ClientRegistry
from authz_service.identity.federation import UpstreamProvider
from authz_service.identity.revocations import RevocationFeed
from authz_service.identity.server import AuthorizationServer
from authz_service.identity.store import IdentityStore
from authz_service.identity.subject import Subject
from authz_service.identity.tokens import Keys, Resources, TokenIssuer
from authz_service.settings import Settings
from portcullis_contracts.catalog import Catalog
from portcullis_contracts.directory import Directory, DirectoryError, load_directory

__all__ = ["DirectoryHolder", "IdentityProvider", "load_or_create_session_secret"]

logger = logging.getLogger("portcullis.authz.identity")
_SESSION_SECRET_FILE = "session-secret"
_DIRECTORY_CHECK_SECONDS = 1.0
_PURGE_INTERVAL_SECONDS = 600.0
# Password guessing: after this many failures for a user name, or from one address (higher: people behind one
# proxy share it), within the window, sign-ins pause until the window ends, answered before any hashing.
_MAX_FAILURES_PER_USER = 10
_MAX_FAILURES_PER_ADDRESS = 50
_FAILURE_WINDOW_SECONDS = 900.0


def load_or_create_session_secret(key_dir: Path) -> str:
    """The secret that signs login cookies, shared by every worker (created 0600 on first use)."""
    path = key_dir / _SESSION_SECRET_FILE
    if not path.exists():
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _signature(path: Path) -> tuple[int, int, int]:
    # Size and inode too: two writes within the file system's timestamp granularity share an mtime.
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class DirectoryHolder:
    """The directory file, re-read when it changes (checked at most once a second); a broken edit keeps the
    previous directory in force.
    """

    def __init__(self, path: Path):
        self._path = path
        self._signature = _signature(path)
        self._directory = load_directory(path)
        self._checked = time.monotonic()

    def get(self) -> Directory:
        if time.monotonic() - self._checked > _DIRECTORY_CHECK_SECONDS:
            self._checked = time.monotonic()
            try:
                signature = _signature(self._path)
                if signature != self._signature:
                    self._directory, self._signature = load_directory(self._path), signature
            except (OSError, DirectoryError):
                pass
        return self._directory


class IdentityProvider:
    """Everything the OAuth routes use.

    Raises:
        DirectoryError: the directory file is missing or invalid.
    """

    def __init__(
        self, settings: Settings, *, catalog: Callable[[], Catalog], keys: Keys, now: Callable[[], float] = time.time
    ):
        self.settings = settings
        self.issuer = settings.issuer.rstrip("/")
        self.directory = DirectoryHolder(settings.directory_file)
        self.store = IdentityStore(settings.identity_database(), now=now)
        self.clients = ClientRegistry(
            self.directory.get, self.store, allow_insecure_documents=settings.allow_insecure_metadata_documents
        )
        self.resources = Resources(settings.gateway_url, catalog, settings.extra_resources, self.issuer)
        self.tokens = TokenIssuer(
            issuer=self.issuer,
            keys=keys,
            store=self.store,
            access_ttl=settings.access_token_ttl_seconds,
            refresh_ttl=settings.refresh_token_ttl_seconds,
            now=now,
        )
        self.server = AuthorizationServer(
            issuer=self.issuer,
            clients=self.clients,
            store=self.store,
            tokens=self.tokens,
            resources=self.resources,
            code_ttl=settings.authorization_code_ttl_seconds,
            refresh_subject=self.current_subject,
        )
        self.upstream: UpstreamProvider | None = None
        if settings.upstream_issuer:
            self.upstream = UpstreamProvider(
                issuer=settings.upstream_issuer,
                client_id=settings.upstream_client_id,
                client_secret=settings.upstream_client_secret.get_secret_value(),
                redirect_uri=f"{self.issuer}/federation/callback",
                groups_claim=settings.upstream_groups_claim,
                business_groups_claim=settings.upstream_business_groups_claim,
            )
        self.session_secret = load_or_create_session_secret(settings.key_dir)
        # Published at GET /revocations; the edge and every kit server follow it, none reads this store.
        self.revocations = RevocationFeed(self.store, now=now)
        self._purged = time.monotonic()  # the first purge waits an interval: workers start together

    def purge_now_and_then(self) -> None:
        """Delete what has expired from the store, at most once per interval (call it often)."""
        if time.monotonic() - self._purged <= _PURGE_INTERVAL_SECONDS:
            return
        self._purged = time.monotonic()
        try:
            self.store.purge_expired()
        except Exception:  # a database hiccup: the next interval tries again
            logger.warning("could not purge expired identity state; trying again later")

    def login_throttled(self, username: str, address: str) -> bool:
        """Whether sign-ins for this user name or from this address are paused after too many failures."""
        window = _FAILURE_WINDOW_SECONDS
        return (
            self.store.failures([f"user:{username.lower()}"], window) >= _MAX_FAILURES_PER_USER
            or self.store.failures([f"address:{address}"], window) >= _MAX_FAILURES_PER_ADDRESS
        )

    def login(self, username: str, password: str, *, address: str = "") -> Subject | None:
        """The directory user with this password, as a subject; None otherwise (and the failure is counted)."""
        user = self.directory.get().authenticate(username, password)
        if user is None:
            self.store.record_failure([f"user:{username.lower()}", f"address:{address}"], _FAILURE_WINDOW_SECONDS)
            return None
        self.store.clear_failures(f"user:{username.lower()}")
        return Subject(
            sub=username,
            email=user.email,
            name=user.name,
            groups=tuple(sorted(user.groups)),
            business_groups=tuple(sorted(user.business_groups)),
            source="directory",
            auth_time=int(time.time()),
        )

    def current_subject(self, subject: Subject) -> Subject | None:
        """A directory user as the directory says now (removed: None); other sources as they signed in."""
        if subject.source != "directory":
            return subject
        user = self.directory.get().users.get(subject.sub)
        if user is None:
            return None
        return Subject(
            sub=subject.sub,
            email=user.email,
            name=user.name,
            groups=tuple(sorted(user.groups)),
            business_groups=tuple(sorted(user.business_groups)),
            source="directory",
            auth_time=subject.auth_time,
        )

    def close(self) -> None:
        self.store.close()
