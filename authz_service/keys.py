"""The authorization server's signing keys: a ring of RSA keys, rotated without downtime, and its JWKS.

A rotation publishes the new key before it signs, and keeps the old key published until its tokens expire:

    rotate()                                 new key in the JWKS (pending); the old key still signs
    + activation_seconds                     new key signs (every JWKS cache, Envoy's 300 s, has it by now)
    + access-token ttl + 60 s skew           old key leaves the JWKS; a later rotation deletes its file

On disk, in `key_dir` (0700): one `<kid>.pem` per key (PKCS#8, 0600 from creation) and the manifest
`keyring.json` (0600, replaced atomically) listing each key's kid, created_at, active_from and retire_at in
Unix seconds (retire_at is null until a rotation sets it). Rotations by several processes are serialized by
`keyring.lock` (flock); every process re-reads the manifest when it changes, so a rotation by the CLI reaches
the running workers without a restart.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from authz_service.errors import ConfigurationError

__all__ = [
    "DEFAULT_TOKEN_TTL_SECONDS",
    "MANIFEST_FILE",
    "RETIREMENT_SKEW_SECONDS",
    "KeyEntry",
    "KeyRing",
    "KeyRingError",
    "KeyState",
    "SigningKey",
]

logger = logging.getLogger("portcullis.authz")

MANIFEST_FILE = "keyring.json"
RETIREMENT_SKEW_SECONDS = 60
DEFAULT_TOKEN_TTL_SECONDS = 3600
_LOCK_FILE = "keyring.lock"
_MANIFEST_VERSION = 1
_CHECK_SECONDS = 1.0
_KID = re.compile(r"[A-Za-z0-9_-]{43}")  # a base64url SHA-256 thumbprint: also a safe file name

KeyState = Literal["active", "pending", "retiring", "retired"]


class KeyRingError(ConfigurationError):
    """The key directory cannot be used: a corrupt manifest, a key file that is not an RSA private key, a missing
    key file, or no ring at all. Never answered by creating a new key.
    """


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SigningKey:
    """An RSA key with a stable `kid` (its RFC 7638 thumbprint)."""

    def __init__(self, private_key: rsa.RSAPrivateKey):
        self._private_key = private_key
        numbers = private_key.public_key().public_numbers()
        self._public_jwk = {"kty": "RSA", "e": _b64(numbers.e), "n": _b64(numbers.n)}
        thumbprint = json.dumps(self._public_jwk, sort_keys=True, separators=(",", ":")).encode()
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(thumbprint).digest()).rstrip(b"=").decode()

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def from_pem(cls, data: bytes, *, source: str) -> SigningKey:
        """Load an unencrypted PEM private key.

        Raises:
            KeyRingError: `data` is not an unencrypted PEM private key, or not an RSA one.
        """
        try:
            private_key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyRingError(f"{source} is not an unencrypted PEM private key") from None
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise KeyRingError(f"{source} is not an RSA private key")
        return cls(private_key)

    def pem(self) -> bytes:
        return self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_key(self) -> rsa.RSAPublicKey:
        return self._private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK (no private parts)."""
        return {**self._public_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def jwks(self) -> dict[str, Any]:
        """A JWKS document of this key alone."""
        return {"keys": [self.public_jwk()]}

    def sign(self, payload: dict[str, Any]) -> str:
        """An RS256 JWT of `payload` as given, with this key's `kid` in the header."""
        return jwt.encode(payload, self._private_key, algorithm="RS256", headers={"kid": self.kid})

    def mint(
        self,
        *,
        issuer: str,
        subject: str,
        audience: str,
        client_id: str,
        claims: dict[str, Any] | None = None,
        ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
        now: float | None = None,
    ) -> str:
        """A signed RS256 access token."""
        issued = int(now if now is not None else time.time())
        payload = {
            **(claims or {}),
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "client_id": client_id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return self.sign(payload)


@dataclass(frozen=True)
class KeyEntry:
    """One key of the manifest; times are Unix seconds."""

    kid: str
    created_at: float
    active_from: float
    retire_at: float | None = None

    def published(self, now: float) -> bool:
        return self.retire_at is None or now < self.retire_at


@dataclass(frozen=True)
class _Snapshot:
    entries: tuple[KeyEntry, ...]  # in order of creation: the last active one signs
    keys: Mapping[str, SigningKey]


_Signature = tuple[int, int, int]  # inode, mtime (ns), size of the manifest: changes with every replace


class KeyRing:
    """The signing keys of one issuer, shared through `key_dir` by every process that signs or verifies.

    Every read (`current`, `jwks`, `public_key`, `entries`) first re-reads the manifest if it changed, checked
    at most once a second by the injected clock. A manifest that turns corrupt while running is logged and the
    keys loaded before stay in force (`last_error` says why).
    """

    def __init__(self, key_dir: Path, *, now: Callable[[], float] = time.time):
        """Open the ring in `key_dir`.

        Raises:
            KeyRingError: `key_dir` holds no ring, or the ring is corrupt.
        """
        self.key_dir = key_dir
        self.last_error: KeyRingError | None = None
        # The pre-publication time of the deployment, when opened by `load_or_create`; `rotate` is told its own.
        self.activation_seconds: int | None = None
        self._now = now
        self._lock = threading.Lock()
        self._snapshot = _Snapshot((), {})
        if not (key_dir / MANIFEST_FILE).exists():
            raise KeyRingError(f"no signing-key ring in {key_dir} ({MANIFEST_FILE} is missing)")
        with _flock(key_dir, exclusive=False):
            self._snapshot, self._signature = self._load()
        self._checked_at = now()

    @classmethod
    def load_or_create(cls, key_dir: Path, *, activation_seconds: int, now: Callable[[], float] = time.time) -> KeyRing:
        """Open the ring in `key_dir`; in an empty directory, create it with a first key that signs at once.

        `activation_seconds` (the deployment's pre-publication time) is kept as `activation_seconds`.

        Raises:
            ValueError: a negative `activation_seconds`.
            KeyRingError: the ring is corrupt, or `key_dir` holds key files but no manifest.
        """
        if activation_seconds < 0:
            raise ValueError("activation_seconds must not be negative")
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _flock(key_dir, exclusive=True):
            if not (key_dir / MANIFEST_FILE).exists():
                stray = sorted(path.name for path in key_dir.glob("*.pem"))
                if stray:
                    raise KeyRingError(f"{key_dir} holds key files ({', '.join(stray)}) but no {MANIFEST_FILE}")
                key, created = SigningKey.generate(), now()
                _write_private(key_dir / f"{key.kid}.pem", key.pem())
                _write_manifest(key_dir, [KeyEntry(key.kid, created, created)])
        ring = cls(key_dir, now=now)
        ring.activation_seconds = activation_seconds
        return ring

    def current(self) -> SigningKey:
        """The key that signs now: the newest key whose `active_from` has come.

        Raises:
            KeyRingError: no key is active yet (a clock set back before the first key).
        """
        snapshot, now = self._refresh(), self._now()
        for entry in reversed(snapshot.entries):
            if entry.active_from <= now and entry.published(now):
                return snapshot.keys[entry.kid]
        raise KeyRingError(f"no key of {self.key_dir} is active yet")

    def jwks(self) -> dict[str, Any]:
        """The public JWKS: every key not retired, including keys published ahead of their activation."""
        snapshot, now = self._refresh(), self._now()
        return {"keys": [snapshot.keys[e.kid].public_jwk() for e in snapshot.entries if e.published(now)]}

    def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        """The public key of a published key, to verify our own tokens; None for an unknown or retired kid."""
        snapshot, now = self._refresh(), self._now()
        for entry in snapshot.entries:
            if entry.kid == kid and entry.published(now):
                return snapshot.keys[kid].public_key()
        return None

    def entries(self) -> tuple[KeyEntry, ...]:
        """Every key of the manifest, oldest first."""
        return self._refresh().entries

    def state(self, entry: KeyEntry) -> KeyState:
        """`active` (signs now), `pending` (published, signs later), `retiring` (published, signs no more) or
        `retired` (no longer published; the next rotation deletes it).
        """
        now = self._now()
        if not entry.published(now):
            return "retired"
        if entry.active_from > now:
            return "pending"
        try:
            current = self.current().kid
        except KeyRingError:
            current = ""
        return "active" if entry.kid == current else "retiring"

    def rotate(self, *, activation_seconds: int, token_ttl_seconds: int) -> SigningKey:
        """Publish a new key that signs from `activation_seconds` on; retire the keys it replaces.

        Every key without a retirement date (the current key, and a pending key this one overtakes) gets
        retire_at = new key's active_from + `token_ttl_seconds` + 60 s, so its tokens validate until they
        expire. Keys retired by now leave the manifest and their files are deleted.

        Raises:
            ValueError: a negative duration.
            KeyRingError: the ring on disk is corrupt.
        """
        if activation_seconds < 0 or token_ttl_seconds < 0:
            raise ValueError("activation_seconds and token_ttl_seconds must not be negative")
        key = SigningKey.generate()  # outside the lock: generating takes tens of milliseconds
        with _flock(self.key_dir, exclusive=True):
            # Re-read under the lock: another process may have rotated since this one last looked.
            entries, _ = _read_manifest(self.key_dir)
            now = self._now()
            active_from = now + activation_seconds
            retire_at = active_from + token_ttl_seconds + RETIREMENT_SKEW_SECONDS
            kept = [replace(e, retire_at=retire_at) if e.retire_at is None else e for e in entries if e.published(now)]
            _write_private(self.key_dir / f"{key.kid}.pem", key.pem())
            _write_manifest(self.key_dir, [*kept, KeyEntry(key.kid, now, active_from)])
            for entry in entries:
                if not entry.published(now):
                    (self.key_dir / f"{entry.kid}.pem").unlink(missing_ok=True)
            with self._lock:
                self._snapshot, self._signature = self._load()
                self.last_error = None
        return key

    def _refresh(self) -> _Snapshot:
        now = self._now()
        if self._checked_at <= now < self._checked_at + _CHECK_SECONDS:
            return self._snapshot
        with self._lock:
            if self._checked_at <= now < self._checked_at + _CHECK_SECONDS:
                return self._snapshot  # another thread just checked
            self._checked_at = now
            try:
                signature = _signature(os.stat(self.key_dir / MANIFEST_FILE))
                if signature != self._signature:
                    self._signature = signature  # a broken manifest is reported once, not every second
                    with _flock(self.key_dir, exclusive=False):
                        self._snapshot, self._signature = self._load()
                    self.last_error = None
            except (KeyRingError, OSError) as exc:
                error = exc if isinstance(exc, KeyRingError) else KeyRingError(f"{self.key_dir}: {exc}")
                if str(error) != str(self.last_error):
                    logger.error("signing-key ring reload rejected, the keys loaded before stay in force: %s", error)
                self.last_error = error
        return self._snapshot

    def _load(self) -> tuple[_Snapshot, _Signature]:
        """The manifest and its keys (key files never change: keys loaded before are reused)."""
        entries, signature = _read_manifest(self.key_dir)
        keys: dict[str, SigningKey] = {}
        for entry in entries:
            known = self._snapshot.keys.get(entry.kid)
            keys[entry.kid] = known if known is not None else _read_key(self.key_dir, entry.kid)
        return _Snapshot(tuple(entries), keys), signature


def _signature(stat: os.stat_result) -> _Signature:
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


@contextmanager
def _flock(key_dir: Path, *, exclusive: bool) -> Iterator[None]:
    fd = os.open(key_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_manifest(key_dir: Path) -> tuple[list[KeyEntry], _Signature]:
    path = key_dir / MANIFEST_FILE
    with path.open("rb") as handle:
        signature = _signature(os.fstat(handle.fileno()))
        raw = handle.read()
    try:
        document = json.loads(raw)
        if document.get("version") != _MANIFEST_VERSION:
            raise ValueError(f"unsupported version {document.get('version')!r}")
        entries = [_entry(item) for item in document["keys"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyRingError(f"{path} is corrupt: {exc}") from None
    if not entries:
        raise KeyRingError(f"{path} is corrupt: it lists no keys")
    if len({e.kid for e in entries}) != len(entries):
        raise KeyRingError(f"{path} is corrupt: a kid is listed twice")
    return entries, signature


def _entry(item: Any) -> KeyEntry:
    kid = item["kid"]
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise ValueError(f"invalid kid {kid!r}")
    times = [item["created_at"], item["active_from"], item["retire_at"]]
    for value in times[:2] + ([times[2]] if times[2] is not None else []):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"key {kid}: times must be numbers, not {value!r}")
    return KeyEntry(kid, float(times[0]), float(times[1]), None if times[2] is None else float(times[2]))


def _read_key(key_dir: Path, kid: str) -> SigningKey:
    path = key_dir / f"{kid}.pem"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyRingError(f"{path} is missing, but {MANIFEST_FILE} lists key {kid}") from None
    key = SigningKey.from_pem(data, source=str(path))
    if key.kid != kid:
        raise KeyRingError(f"{path} holds key {key.kid}, not {kid}")
    return key


def _write_private(path: Path, data: bytes) -> None:
    # 0600 from creation, O_EXCL: never a moment where the file is readable by others, never an overwrite.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_manifest(key_dir: Path, entries: list[KeyEntry]) -> None:
    document = {
        "version": _MANIFEST_VERSION,
        "keys": [
            {"kid": e.kid, "created_at": e.created_at, "active_from": e.active_from, "retire_at": e.retire_at}
            for e in entries
        ],
    }
    temporary = key_dir / f".{MANIFEST_FILE}.{uuid.uuid4().hex}.tmp"
    try:
        _write_private(temporary, json.dumps(document, indent=2).encode() + b"\n")
        os.replace(temporary, key_dir / MANIFEST_FILE)  # readers see the old manifest or the new, never half
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(key_dir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
