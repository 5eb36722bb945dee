"""The built-in development identity's signing key, its JWKS, and token minting for local use.

The full OAuth 2.1 authorization server (authorization code + PKCE, client credentials, token exchange,
key rotation) builds on this module; for now it gives `portcullis up` a real issuer whose JWKS the
gateway trusts, and `portcullis token` a way to mint tokens from the directory file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["SigningKey", "load_or_create_signing_key"]

_KEY_FILE = "signing-key.pem"
DEFAULT_TOKEN_TTL_SECONDS = 3600


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

    def pem(self) -> bytes:
        return self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document."""
        return {"keys": [{**self._public_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

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
        return jwt.encode(payload, self._private_key, algorithm="RS256", headers={"kid": self.kid})


def load_or_create_signing_key(key_dir: Path) -> SigningKey:
    """Read the key from `key_dir`, creating it (mode 0600, directory 0700) on first use."""
    path = key_dir / _KEY_FILE
    if path.exists():
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
        return SigningKey(private_key)
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = SigningKey.generate()
    # Create with 0600 from the start: never a moment where the key is readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.pem())
    return key
