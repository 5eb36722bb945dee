"""Who is asking the AuthZEN API: service credentials, each bound to the one owner it speaks for.

An owner is a server's name or `registry` (`authzen.may_ask` says what each may ask about). Credentials come from
the settings (`AUTHZ_SERVICE_CREDENTIALS`, a JSON object) and, optionally, from a directory holding one file per
owner whose content is the secret (`AUTHZ_SERVICE_CREDENTIALS_DIR`: a mounted Kubernetes Secret, or the state
folder where `portcullis up` and `portcullis server dev` give each server its own). The directory is read again
every second, so a new server's credential works without a restart, and a rotated or removed one stops working
within a second (a Kubernetes Secret update swaps its `..data` link; an edit in place is seen too).

A secret shared by two owners would speak for both: the settings refuse it at start-up, and a directory that
holds one drops both owners (logged) until it is fixed.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

__all__ = ["OWNER_PATTERN", "ServiceCredentials", "ensure_credential"]

logger = logging.getLogger(__name__)

# A server's route (the catalog's name rule) or "registry"; hidden files (a Secret's `..data`) are not owners.
OWNER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_MAX_SECRET_BYTES = 4096


class ServiceCredentials:
    """The owner a bearer service credential speaks for (constant-time over every secret).

    The directory is read again at most every `reread_seconds` (a handful of small files): a credential added,
    replaced (even written in place) or removed takes effect within that time.
    """

    def __init__(self, fixed: Mapping[str, str], directory: Path | None = None, *, reread_seconds: float = 1.0):
        self._fixed = dict(fixed)
        self._directory = directory
        self._reread_seconds = reread_seconds
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._dropped: list[str] = []
        self._current: dict[str, bytes] = {name: secret.encode() for name, secret in self._fixed.items()}

    def owner(self, authorization: str | None) -> str | None:
        """The owner whose secret `Authorization: Bearer X` carries, or None."""
        scheme, _, token = (authorization or "").partition(" ")
        presented = token.strip().encode()
        found: str | None = None
        for name, secret in self._credentials().items():
            if hmac.compare_digest(presented, secret):
                found = name
        return found if scheme.lower() == "bearer" and presented else None

    def _credentials(self) -> dict[str, bytes]:
        if self._directory is None:
            return self._current
        now = time.monotonic()
        read_at = self._read_at
        if read_at is None or now - read_at >= self._reread_seconds:
            with self._lock:
                if self._read_at is None or now - self._read_at >= self._reread_seconds:
                    self._current = self._load()
                    self._read_at = now
        return self._current

    def _load(self) -> dict[str, bytes]:
        loaded = {name: secret.encode() for name, secret in self._fixed.items()}
        try:
            paths = sorted(self._directory.iterdir()) if self._directory is not None else []
        except OSError:  # no directory (yet): the settings' credentials only
            paths = []
        if paths:
            for path in paths:
                if not OWNER_PATTERN.match(path.name) or path.name in loaded:
                    continue
                try:
                    with path.open("rb") as handle:
                        secret = handle.read(_MAX_SECRET_BYTES + 1).strip()
                except OSError:  # a directory, a dangling link, a file being replaced: not a credential
                    continue
                if secret and len(secret) <= _MAX_SECRET_BYTES:
                    loaded[path.name] = secret
        shared = {secret for secret, count in Counter(loaded.values()).items() if count > 1}
        dropped = sorted(name for name, secret in loaded.items() if secret in shared)
        if dropped and dropped != self._dropped:  # said once per change, not at every read
            logger.error("service credentials of %s share a secret: refused until each has its own", dropped)
        self._dropped = dropped
        return {name: secret for name, secret in loaded.items() if secret not in shared}


def ensure_credential(directory: Path, owner: str) -> str:
    """`owner`'s secret in a credentials directory, created (random, readable by this user only) when missing.

    The file appears whole or not at all (written aside, then linked into place), and two processes creating the
    same owner's credential at once agree on one secret.

    Raises:
        ValueError: `owner` is not a valid owner name.
    """
    if not OWNER_PATTERN.match(owner):
        raise ValueError(f"not a service credential owner: {owner!r}")
    path = directory / owner
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = directory / f".{owner}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip()
